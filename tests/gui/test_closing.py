"""Closing the window during training asks, then stops, saves a checkpoint and ends everything fast."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from tests.gui.conftest import configure_tiny_run

LONG = 60_000


def start_tiny_training(qtbot, window, source):
    configure_tiny_run(window, source, checkpoint_every=10**6)
    with qtbot.waitSignal(window.bridge.sig_training_started, timeout=LONG):
        window.start_training()
    qtbot.waitUntil(lambda: window.training_page.step >= 3, timeout=LONG)


def test_closing_during_training_saves_and_stops_in_under_two_seconds(qtbot, tiny_npz, monkeypatch):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    start_tiny_training(qtbot, window, tiny_npz)

    asked = []
    monkeypatch.setattr(window, "ask_stop_training", lambda: asked.append(1) or False)
    window.close()  # "no": the window stays and training goes on
    assert asked and window.isVisible() and window.bridge.training

    monkeypatch.setattr(window, "ask_stop_training", lambda: True)
    finished = []
    window.bridge.sig_training_finished.connect(lambda step, reason: finished.append((step, reason)))
    started = time.monotonic()
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    seconds = time.monotonic() - started
    assert seconds < 2.0, f"closing took {seconds:.2f} s"
    assert not multiprocessing.active_children()
    assert not window.bridge._jobs.isRunning()
    step, reason = finished[0]
    assert reason == "stopped" and step >= 3
    assert (Path(window.run_path) / "checkpoints" / f"step-{step:07d}" / "state.json").is_file()


def test_stop_while_paused_saves_and_ends(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    start_tiny_training(qtbot, window, tiny_npz)
    with qtbot.waitSignal(window.bridge.sig_paused, timeout=LONG) as paused:
        window.toggle_pause()
    with qtbot.waitSignal(window.bridge.sig_training_ended, timeout=LONG):
        window.stop_training()
    step = paused.args[0]
    assert (Path(window.run_path) / "checkpoints" / f"step-{step:07d}").is_dir()
    assert window.training_page.state_name == "idle" and window.training_page.start_button.isEnabled()
    window.close()


def test_a_trainer_that_dies_becomes_a_message_and_the_run_can_continue(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, checkpoint_every=5)
    with qtbot.waitSignal(window.bridge.sig_checkpoint_saved, timeout=LONG):
        window.start_training()
    with qtbot.waitSignal(window.bridge.sig_training_ended, timeout=LONG):
        window.bridge._link.process.kill()  # as the OOM killer would
    assert "ended unexpectedly" in window.last_message
    assert window.training_page.start_button.isEnabled() and not multiprocessing.active_children()
    qtbot.waitUntil(lambda: window.training_page.state.text().startswith("Opened at step"), timeout=LONG)
    resumed_from = window.training_page.step
    with qtbot.waitSignal(window.bridge.sig_training_started, timeout=LONG) as started:
        window.start_training()  # continue from the last checkpoint
    assert started.args[1] == resumed_from and resumed_from % 5 == 0
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)


def test_closing_while_the_trainer_still_starts_ends_at_once(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    configure_tiny_run(window, tiny_npz)
    qtbot.waitUntil(lambda: not window.data_page.loading, timeout=60_000)  # else Start waits for the data
    window.start_training()
    assert window.bridge.training and window.run_path is None  # the child is still importing torch
    started = time.monotonic()
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
    assert time.monotonic() - started < 2.0
    assert not multiprocessing.active_children() and "unexpectedly" not in window.last_message


def test_after_training_ends_its_message_and_target_stay_over_the_reopen(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, steps=40, checkpoint_every=2)
    qtbot.waitUntil(lambda: not window.data_page.loading, timeout=LONG)
    with qtbot.waitSignal(window.bridge.sig_checkpoint_saved, timeout=LONG):
        window.start_training()
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.stop_training()
    page = window.training_page
    assert page.state.text().startswith("Stopped at step") and page.steps.value() == 40
    target = page.step + 2  # fewer than the 40 the run was made with
    page.steps.setValue(target)
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.start_training()
    assert page.state.text() == f"Finished: step {target}"  # not "Opened at step …"
    assert page.steps.value() == target and window.statusBar().currentMessage() == f"Finished: step {target}"
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)
