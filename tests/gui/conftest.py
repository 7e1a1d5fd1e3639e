"""GUI test isolation: private QSettings and user data, no modal questions, and no thread or
child process may outlive a test."""
from __future__ import annotations

import multiprocessing
import time
import weakref
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, QThread

from tests.conftest import TINY_PARAMS

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
def no_thread_or_process_left(monkeypatch):
    """Fail a test that leaves a QThread running or a child process alive (after a 2 s grace)."""
    started: list[weakref.ref] = []
    original_start = QThread.start

    def recording_start(self, *args):
        started.append(weakref.ref(self))
        return original_start(self, *args)

    monkeypatch.setattr(QThread, "start", recording_start)
    yield
    deadline = time.monotonic() + LEFTOVER_GRACE_S
    running = []
    for ref in started:
        thread = ref()
        try:
            if thread is not None and not thread.wait(max(0, int((deadline - time.monotonic()) * 1000))):
                running.append(type(thread).__name__)
        except RuntimeError:  # the C++ object is already gone: not running
            continue
    alive = []
    for child in multiprocessing.active_children():
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            alive.append(child.name)
            child.kill()
            child.join(5)
    assert not running, f"QThread(s) still running after the test: {running}"
    assert not alive, f"child process(es) still alive after the test: {alive}"


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
        for name, value in TINY_PARAMS[kind].items():
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

    from engine.config import RunConfig
    from engine.session import Session
    from tests.conftest import shapes_dataset, tiny_config_dict

    folder = tmp_path_factory.mktemp("gui-run")
    images, labels = shapes_dataset()
    np.savez(folder / "shapes.npz", images=images, labels=labels)
    config = RunConfig.from_dict(tiny_config_dict(folder / "shapes.npz", steps=6, checkpoint_every=2,
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
