"""Bad input through the window: a message that says what to do, and the window keeps working."""
from __future__ import annotations

from tests.gui.conftest import configure_tiny_run

LONG = 60_000


def test_empty_and_broken_folders_are_reported_and_training_is_refused(qtbot, tmp_path, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    data = window.data_page

    empty = tmp_path / "empty"
    empty.mkdir()
    data.set_source(str(empty))
    qtbot.waitUntil(lambda: "No images" in data.report.toPlainText(), timeout=LONG)
    assert data.count.text() == "no usable images" and data.thumbnails.count == 0
    window.start_training()
    assert not window.bridge.training
    assert window.last_message.startswith("Cannot start training: the data cannot be used: No images")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cat.png").write_bytes(b"<html>not a picture</html>")
    (broken / "dog.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    (broken / "empty.webp").write_bytes(b"")
    data.set_source(str(broken))
    qtbot.waitUntil(lambda: "could be read" in data.report.toPlainText(), timeout=LONG)
    report = data.report.toPlainText()
    assert "cat.png" in report and "zero-byte file" in report

    # The window still works: a good source loads.
    data.set_source(str(tiny_npz))
    qtbot.waitUntil(lambda: data.count.text() == "96 images", timeout=LONG)
    assert data.error == "" and data.thumbnails.count == 48
    window.close()


def test_learning_rate_of_zero_or_text_is_refused_with_the_reason(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, members=("dcgan",))
    editor = window.members_page.editors["dcgan"]

    for typed, reason in (("0", "DCGAN: learning rate must be greater than 0, got '0'"),
                          ("fast", "DCGAN: learning rate must be a number, got 'fast'")):  # the editor's words
        editor.lr.setText(typed)
        editor.lr.editingFinished.emit()
        assert not editor.valid
        assert editor.error_label.isVisibleTo(editor) and reason in editor.error_label.text()
        assert "d9534f" in editor.lr.styleSheet()  # the refused field is marked
        window.start_training()
        assert not window.bridge.training
        assert reason in window.last_message
        assert window.tabs.currentWidget() is window.members_page

    editor.lr.setText("1e-3")
    editor.batch_size.setText("12.5")
    editor.batch_size.editingFinished.emit()
    assert "batch size must be an integer" in editor.error_label.text()
    assert "d9534f" in editor.batch_size.styleSheet() and editor.lr.styleSheet() == ""

    editor.batch_size.setText("16")
    editor.pace.setText("0")
    editor.pace.editingFinished.emit()
    assert "DCGAN: pace must be at least 0.05, got '0'" in editor.error_label.text()
    assert "d9534f" in editor.pace.styleSheet() and editor.batch_size.styleSheet() == ""

    editor.pace.setText("2.5")
    editor.pace.editingFinished.emit()
    assert editor.valid and not editor.error_label.isVisibleTo(editor) and editor.lr.styleSheet() == ""
    settings = window.members_page.validate_all()[0]
    assert settings["optim"]["lr"] == 0.001 and settings["pace"] == 2.5
    window.close()


def test_a_folder_that_is_not_a_run_gives_a_message(qtbot, tmp_path, monkeypatch):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    not_a_run = tmp_path / "holiday-photos"
    not_a_run.mkdir()
    monkeypatch.setattr(window, "ask_run_folder", lambda: str(not_a_run))
    with qtbot.waitSignal(window.bridge.sig_run_failed, timeout=LONG):
        window.open_action.trigger()
    assert window.last_message == f"Cannot open the run: {not_a_run} is not a Chorus run folder (no run.json)"
    assert window.run_path is None

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "run.json").write_text("{ not json")
    with qtbot.waitSignal(window.bridge.sig_run_failed, timeout=LONG):
        window.open_run(damaged)
    assert "run.json is damaged" in window.last_message

    window.open_run(tmp_path / "gone")
    assert "does not exist" in window.last_message

    # Still a working window: the members page validates, pages switch.
    window.tabs.setCurrentWidget(window.training_page)
    assert window.members_page.validate_all()
    window.close()


def test_trainer_troubles_become_messages_not_crashes(qtbot):
    """What the child reports when a member diverges, a save fails or every member gave up."""
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    bridge = window.bridge
    bridge.sig_member_failed.emit("vae", 12, "loss became NaN (rolled back)")
    assert window.last_message == "Member vae failed at step 12: loss became NaN (rolled back)"
    bridge.sig_save_failed.emit(20, "/runs/x/checkpoints", "No space left on device")
    assert window.last_message == "Could not save at step 20: /runs/x/checkpoints: No space left on device"
    bridge.sig_training_finished.emit(30, "failed")
    assert window.training_page.state.text() == "Stopped at step 30: every member failed"
    assert window.last_message.startswith("Training stopped: Every member failed")
    bridge.sig_training_failed.emit("the trainer process ended unexpectedly (exit code -9)")
    assert "exit code -9" in window.last_message and window.training_page.start_button.isEnabled()
    window.close()


def test_start_pressed_while_new_data_is_read_waits_for_it_and_forgets_the_old_error(qtbot, tmp_path, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    configure_tiny_run(window, tmp_path / "nowhere")
    data = window.data_page
    qtbot.waitUntil(lambda: "not found" in data.error, timeout=LONG)
    data.path.clear()
    qtbot.keyClicks(data.path, str(tiny_npz))  # typed, and Start pressed at once
    assert data.loading and data.error == ""
    window.start_training()
    assert not window.bridge.training and "Reading the data first" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.bridge.training, timeout=LONG)  # started once the data was read
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=LONG)

    again = MainWindow(preview_data=False)
    qtbot.addWidget(again)
    again.show()
    configure_tiny_run(again, tmp_path / "nowhere")  # a bad path and Start at once: refused when read
    again.start_training()
    qtbot.waitUntil(lambda: again.last_message.startswith("Cannot start training: the data cannot be used"),
                    timeout=LONG)
    assert not again.bridge.training and "not found" in again.last_message
    again.close()


def test_a_run_whose_newest_checkpoint_is_damaged_names_the_older_one_to_use(qtbot, tiny_run):
    from gui.main_window import MainWindow

    newest = sorted((tiny_run / "checkpoints").iterdir())[-1]
    file = newest / "vae.safetensors"
    file.write_bytes(file.read_bytes()[:200])
    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.bridge.sig_run_failed, timeout=LONG):
        window.open_run(tiny_run)
    older = sorted((tiny_run / "checkpoints").iterdir())[-2].name
    assert str(file) in window.last_message and "is damaged" in window.last_message
    assert f"move {newest.name} out of" in window.last_message and f"to resume from {older}" in window.last_message
    window.close()


def test_start_right_after_emptying_the_path_is_refused_not_left_waiting(qtbot, tiny_npz):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz)
    qtbot.waitUntil(lambda: not window.data_page.loading, timeout=LONG)
    window.data_page.path.clear()
    qtbot.keyClicks(window.data_page.path, " ")  # typed away: the typing pause has not run out
    window.start_training()
    assert not window.start_pending and not window.bridge.training
    assert window.last_message.startswith("Cannot start training: the data cannot be used: choose a folder")
    window.close()
