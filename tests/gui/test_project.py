"""Project handling: save a new run, recent runs and geometry in private settings, drag-and-drop,
shortcuts, the system colour scheme."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from tests.gui.conftest import configure_tiny_run

LONG = 60_000


def test_save_creates_the_new_run_folder_and_opens_it(qtbot, tiny_npz, tmp_path, monkeypatch):
    from gui import settings
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, members=("vae",))
    target = tmp_path / "my-first-run"
    monkeypatch.setattr(window, "ask_new_run_folder", lambda: str(target))
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.save_action.trigger()
    assert (target / "run.json").is_file() and (target / "checkpoints" / "step-0000000").is_dir()
    assert window.run_path == str(target) and window.windowTitle() == "Chorus — my-first-run"
    assert settings.recent_runs()[0] == str(target.resolve())
    assert window.members_page.read_only
    window.close()


def test_new_runs_go_under_the_user_data_dir(qtbot, tiny_npz, isolated_studio):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, members=("vae",), steps=3)
    with qtbot.waitSignal(window.bridge.sig_training_ended, timeout=LONG):
        window.start_action.trigger()
    assert Path(window.run_path).parent == isolated_studio / "user-data" / "runs"
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        pass  # the window reopens what was saved
    window.new_action.trigger()
    assert window.run_path is None and not window.members_page.read_only
    assert window.data_page.raw()["source"] == "fashion-mnist" and list(window.members_page.editors) == ["dcgan", "vae"]
    window.close()


def test_geometry_and_recent_runs_live_in_private_settings(qtbot, tiny_run, isolated_studio):
    from gui import settings
    from gui.main_window import MainWindow

    assert Path(settings.qsettings().fileName()).is_relative_to(isolated_studio)
    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    window.resize(760, 520)  # fits the offscreen 800×600 screen (width stops at the pages' minimum)
    size = (window.width(), window.height())
    assert size[1] == 520
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.open_run(tiny_run)
    window.close()

    again = MainWindow(preview_data=False)
    qtbot.addWidget(again)
    assert (again.width(), again.height()) == size
    assert [a.text() for a in again.recent_actions()] == [str(tiny_run.resolve())]
    again.close()


def test_a_recent_run_that_was_deleted_is_forgotten_with_a_message(qtbot, tmp_path):
    from gui import settings
    from gui.main_window import MainWindow

    gone = tmp_path / "deleted-run"
    settings.add_recent_run(gone)
    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.recent_actions()[0].trigger()
    assert "does not exist" in window.last_message
    assert window.recent_actions() == [] and settings.recent_runs() == []
    window.close()


def test_dropping_a_folder_on_the_data_page_selects_it(qtbot, tmp_path):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    folder = tmp_path / "pictures"
    folder.mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.bridge.sig_data_failed, timeout=LONG):  # an empty folder: reported
        window.data_page.dropEvent(drop)
    assert window.data_page.custom.isChecked() and window.data_page.path.text() == str(folder)
    window.close()


def test_keyboard_shortcuts_switch_pages(qtbot):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
    for index in (2, 4, 0):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1.value + index), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentIndex() == index
    shortcuts = {a.text(): a.shortcut().toString() for a in window.findChildren(type(window.start_action))}
    assert shortcuts["&Start / continue"] == "Ctrl+Return" and shortcuts["S&top and save"] == "Ctrl+."
    window.close()


def test_the_window_follows_the_system_colour_scheme(qtbot, qapp):
    """The platform announces a scheme change (offscreen has no real one, so the test announces it)."""
    from PySide6.QtGui import QGuiApplication, QPalette

    from gui.theme import THEME
    from gui.widgets.loss_plot import LossPlot

    hints = QGuiApplication.styleHints()
    THEME.follow_system(qapp)
    plot = LossPlot("dcgan")
    qtbot.addWidget(plot)
    try:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert THEME.dark and qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
        assert plot.backgroundBrush().color().lightness() < 80
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert not THEME.dark and qapp.palette().color(QPalette.ColorRole.Window).lightness() > 180
        assert plot.backgroundBrush().color().lightness() > 180
    finally:
        THEME.apply(qapp, Qt.ColorScheme.Light)


def test_gpu_precision_and_compile_reach_the_saved_run(qtbot, tiny_npz, tmp_path, monkeypatch):
    from engine.config import COMPILE_MODES, PRECISIONS
    from engine.members.registry import run_config
    from gui.main_window import MainWindow
    from gui.pages import training_page

    assert training_page.PRECISIONS == PRECISIONS and training_page.COMPILE_MODES == COMPILE_MODES
    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    configure_tiny_run(window, tiny_npz, members=("vae",))
    window.training_page.precision.setCurrentText("bf16")
    window.training_page.compile.setCurrentText("step-graph")
    target = tmp_path / "gpu-run"
    monkeypatch.setattr(window, "ask_new_run_folder", lambda: str(target))
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.save_action.trigger()
    import json

    train = run_config(json.loads((target / "run.json").read_text())["config"]).train
    assert (train.precision, train.compile) == ("bf16", "step-graph")
    assert not window.training_page.precision.isEnabled()  # an existing run keeps them
    window.close()


def test_reference_cycles_are_freed_on_the_gui_thread_not_the_engine_thread(qtbot):
    import gc
    import threading
    import weakref

    from gui.app import collect_garbage_on_the_gui_thread

    collector = collect_garbage_on_the_gui_thread()
    assert collect_garbage_on_the_gui_thread() is collector and collector.timer.isActive() and not gc.isenabled()

    class Node:
        pass

    freed_on: list[str] = []
    node = Node()
    node.self = node  # a cycle: only the cyclic collector frees it
    weakref.finalize(node, lambda: freed_on.append(threading.current_thread().name))
    del node

    kept: list = []

    def allocate():  # what a job on the engine thread does: allocations past the collector's threshold
        kept.extend([] for _ in range(10 * gc.get_threshold()[0]))

    worker = threading.Thread(target=allocate, name="engine-job")
    worker.start()
    worker.join()
    assert freed_on == []  # the job thread collected nothing
    qtbot.waitUntil(lambda: freed_on == [threading.main_thread().name], timeout=5000)
    collector.timer.stop()
