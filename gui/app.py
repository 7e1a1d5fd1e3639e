"""Start the studio window."""
from __future__ import annotations

import sys
import traceback


def make_app(argv: list[str] | None = None):
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from engine.resources import resource_path
    from gui import settings
    from gui.theme import THEME

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName(settings.APPLICATION)
    app.setOrganizationName(settings.ORGANIZATION)
    app.setWindowIcon(QIcon(str(resource_path("icons", "chorus.png"))))
    app.setDesktopFileName("chorus")  # Wayland/X11 match the window to chorus.desktop and its icon
    THEME.follow_system(app)
    collect_garbage_on_the_gui_thread()
    return app


_collector = None


def collect_garbage_on_the_gui_thread():
    """Python collects reference cycles on whichever thread happens to allocate: on the engine's job
    thread that may free Qt objects there, which crashes Qt (a segfault seen in the GUI tests). So
    automatic collection is off and a timer on this (the GUI) thread collects instead, with the same
    thresholds (pyqtgraph's GarbageCollector). Returns it; once per process."""
    global _collector
    if _collector is None:
        from pyqtgraph.util.garbage_collector import GarbageCollector

        _collector = GarbageCollector(interval=1.0)
    return _collector


def install_error_hook(window) -> None:
    """An unexpected error becomes a message in the window, never a crash or a silent failure."""
    def hook(kind, value, tb):
        traceback.print_exception(kind, value, tb)
        if issubclass(kind, KeyboardInterrupt):
            window.close()
            return
        window.show_message("Unexpected error", f"{kind.__name__}: {value}\n\nThe window keeps working; "
                            "if this repeats, please report it with the text printed in the terminal.")

    sys.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    app = make_app(argv)
    from gui.main_window import MainWindow

    window = MainWindow()
    install_error_hook(window)
    window.show()
    return app.exec()
