"""GUI test isolation: private QSettings and user data, no modal questions, and no thread or
child process may outlive a test."""
from __future__ import annotations

import gc
import multiprocessing
import time
import weakref
from pathlib import Path

import pytest
from PySide6.QtCore import QEventLoop, QSettings, QThread

from tests.conftest import tiny_params

LEFTOVER_GRACE_S = 2.0


@pytest.fixture(autouse=True)
def isolated_studio(tmp_path: Path, monkeypatch, qapp):
    """Settings and runs go to tmp_path; closing during training answers "yes" without a dialog."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    monkeypatch.setenv("CHORUS_USER_DATA", str(tmp_path / "user-data"))
    monkeypatch.setenv("CHORUS_TRAIN_THREADS", "1")
    from gui.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_stop_training", lambda self: True)
    yield tmp_path


@pytest.fixture(autouse=True)
def garbage_collected_on_the_gui_thread(qapp):
    """As in the app (gui/app.py): no cyclic collection on the engine's job thread, where freeing a Qt
    object crashes; the GUI thread collects. Automatic collection is back for the tests after."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    collector = GarbageCollector(interval=0.5)
    yield
    collector.timer.stop()
    gc.collect()
    gc.enable()


@pytest.fixture(autouse=True)
def no_thread_or_process_left(monkeypatch, qapp):
    """Fail a test that leaves a QThread running or a child process alive (after a 2 s grace).

    The grace runs the event loop, so a window that is still closing (stopping its trainer) can
    finish; whatever is left is then stopped here, so one failing test cannot abort the session.
    """
    started: list[weakref.ref] = []
    original_start = QThread.start

    def recording_start(self, *args):
        started.append(weakref.ref(self))
        return original_start(self, *args)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield
    monkeypatch.setattr(QThread, "start", original_start)

    def running_threads() -> list[QThread]:
        alive = []
        for ref in started:
            thread = ref()
            try:
                if thread is not None and thread.isRunning():
                    alive.append(thread)
            except RuntimeError:  # the C++ object is already gone: not running
                continue
        return alive

    deadline = time.monotonic() + LEFTOVER_GRACE_S
    while (running_threads() or multiprocessing.active_children()) and time.monotonic() < deadline:
        qapp.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        for thread in running_threads()[:1]:
            thread.wait(20)  # a short block instead of a busy loop
    threads = running_threads()
    children = multiprocessing.active_children()
    for child in children:
        child.kill()
        child.join(5)
    for thread in threads:
        for method in ("stop", "shutdown"):
            if hasattr(thread, method):
                getattr(thread, method)()
        thread.wait(30_000)
    assert not threads, f"QThread(s) still running after the test: {[type(t).__name__ for t in threads]}"
    assert not children, f"child process(es) still alive after the test: {[c.name for c in children]}"


def configure_tiny_run(window, source: Path, members=("dcgan", "vae"), steps: int = 100_000,
                       log_every: int = 1, preview_every: int = 25, checkpoint_every: int = 20) -> None:
    """Drive the Data, Members and Training pages to a tiny CPU run (as a user would type it)."""
    data = window.data_page
    data.custom.setChecked(True)
    data.path.setText(str(source))
    data.size.setValue(16)
    page = window.members_page
    page.clear()
    for kind in members:
        page.kind.setCurrentIndex(page.kind.findData(kind))
        page.add_button.click()
        editor = page.editors[kind]
        editor.batch_size.setText("16")
        for name, value in tiny_params(kind).items():
            editor.params.fields[name].setText(str(value))
    training = window.training_page
    training.steps.setValue(steps)
    training.device.setCurrentText("cpu")
    training.log_every.setValue(log_every)
    training.preview_every.setValue(preview_every)
    training.checkpoint_every.setValue(checkpoint_every)


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory) -> Path:
    """A tiny run with all four members and three checkpoints, trained once (without the window)."""
    import numpy as np
    import torch

    from engine.members.registry import run_config
    from engine.session import Session
    from tests.conftest import shapes_dataset, tiny_config_dict

    folder = tmp_path_factory.mktemp("gui-run")
    images, labels = shapes_dataset()
    np.savez(folder / "shapes.npz", images=images, labels=labels)
    config = run_config(tiny_config_dict(folder / "shapes.npz", steps=6, checkpoint_every=2,
                                                  preview_every=3))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is fastest, and the machine may be busy
    try:
        Session.create(config, folder / "tiny-run").train(6)
    finally:
        torch.set_num_threads(threads)
    return folder / "tiny-run"


@pytest.fixture
def tiny_run(trained_tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the trained tiny run (tests may add evaluations to it)."""
    import shutil

    return Path(shutil.copytree(trained_tiny_run, tmp_path / "tiny-run"))
