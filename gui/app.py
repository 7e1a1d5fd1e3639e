"""Start the studio window."""
from __future__ import annotations

import sys


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("Chorus")
    app.setOrganizationName("Chorus")
    window = MainWindow()
    window.resize(1000, 760)
    window.show()
    return app.exec()
