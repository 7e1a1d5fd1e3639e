"""Light or dark, following the system's colour scheme; plots read their colours from here."""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

# Okabe-Ito: distinguishable for colour-blind eyes; darker variants on a light ground.
PENS_DARK = ("#56B4E9", "#E69F00", "#009E73", "#F0E442", "#CC79A7", "#D55E00", "#0072B2")
PENS_LIGHT = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7a6a00")


class Theme(QObject):
    sig_changed = Signal()

    def __init__(self):
        super().__init__()
        self.dark = False
        self._following = False

    def apply(self, app: QApplication, scheme: Qt.ColorScheme | None = None) -> None:
        """Fusion style with a light or dark palette: the given scheme, else the system's."""
        app.setStyle("Fusion")
        if scheme is None:
            scheme = QGuiApplication.styleHints().colorScheme()
        self.dark = scheme == Qt.ColorScheme.Dark
        app.setPalette(dark_palette() if self.dark else app.style().standardPalette())
        self.sig_changed.emit()

    def follow_system(self, app: QApplication) -> None:
        self.apply(app)
        if not self._following:
            self._following = True
            QGuiApplication.styleHints().colorSchemeChanged.connect(lambda scheme: self.apply(app, scheme))

    @property
    def plot_background(self) -> str:
        return "#1e1f22" if self.dark else "#ffffff"

    @property
    def plot_foreground(self) -> str:
        return "#d8d8d8" if self.dark else "#202020"

    def pen_color(self, index: int) -> str:
        colors = PENS_DARK if self.dark else PENS_LIGHT
        return colors[index % len(colors)]

    def pen_count(self) -> int:
        return len(PENS_DARK if self.dark else PENS_LIGHT)


def dark_palette() -> QPalette:
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#2b2d30",
        QPalette.ColorRole.ToolTipBase: "#3c3f41", QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#3c3f41",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3574f0", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6aa8ff", QPalette.ColorRole.PlaceholderText: "#8c8c8c",
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette


THEME = Theme()
