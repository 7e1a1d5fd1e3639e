"""A first studio window: the bundled data at a glance and how to train it.

The full studio (data, members, training, gallery, metrics pages) is the GUI issue's work.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QMainWindow, QVBoxLayout, QWidget

from gui.bridge import EngineBridge

TRAIN_HINT = ("Train from a terminal for now:  python main.py train --data fashion-mnist --out RUN  "
              "— the training, gallery and metrics pages come next.")


def grid_pixmap(images: np.ndarray, columns: int = 8, scale: int = 3) -> QPixmap:
    from engine.store.images import grid

    tiled = np.ascontiguousarray(grid(images, columns)[..., 0] if images.shape[-1] == 1 else grid(images, columns))
    fmt = QImage.Format.Format_Grayscale8 if tiled.ndim == 2 else QImage.Format.Format_RGB888
    image = QImage(tiled.data, tiled.shape[1], tiled.shape[0], tiled.strides[0], fmt).copy()
    return QPixmap.fromImage(image).scaled(image.width() * scale, image.height() * scale)


class MainWindow(QMainWindow):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("Chorus")
        self.bridge = EngineBridge(self)
        self.status = QLabel("Loading the bundled Fashion-MNIST…")
        self.thumbnails = QLabel()
        self.thumbnails.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel(TRAIN_HINT)
        hint.setWordWrap(True)
        layout = QVBoxLayout()
        for widget in (self.status, self.thumbnails, hint):
            layout.addWidget(widget)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self.bridge.sig_preview_loaded.connect(self.show_preview)
        self.bridge.sig_error.connect(self.status.setText)
        self.bridge.load_preview()

    def show_preview(self, images: np.ndarray, report: str) -> None:
        self.thumbnails.setPixmap(grid_pixmap(images))
        self.status.setText(report)

    def closeEvent(self, event) -> None:
        self.bridge.shutdown()
        super().closeEvent(event)
