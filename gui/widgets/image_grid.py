"""A grid of small images drawn crisp (nearest-neighbour) at the largest whole scale that fits.

Knows which cell is under the mouse: hovering shows the cell's caption (e.g. which member made
the image) as a tooltip and emits ``sig_hovered``; clicking selects the cell and emits
``sig_clicked``.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QMouseEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

PAD = 2


FORMATS = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888, 4: QImage.Format.Format_RGBA8888}
CHECKER = ("#d4d4d4", "#f5f5f5")  # drawn under transparent images, as image editors do
CHECKER_CELL = 6  # screen pixels


def to_qimage(image: np.ndarray) -> QImage:
    """(H, W, 1|3|4) uint8 → an owned QImage (4: straight alpha)."""
    image = np.ascontiguousarray(image)
    height, width, channels = image.shape
    return QImage(image.data, width, height, image.strides[0], FORMATS[channels]).copy()


def checker_brush() -> QBrush:
    tile = QPixmap(2 * CHECKER_CELL, 2 * CHECKER_CELL)
    tile.fill(QColor(CHECKER[0]))
    painter = QPainter(tile)
    for x, y in ((0, 0), (CHECKER_CELL, CHECKER_CELL)):
        painter.fillRect(x, y, CHECKER_CELL, CHECKER_CELL, QColor(CHECKER[1]))
    painter.end()
    return QBrush(tile)


class ImageGrid(QWidget):
    sig_hovered = Signal(int)
    sig_clicked = Signal(int)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None, selectable: bool = False,
                 top: bool = False, square: bool = False):
        super().__init__(parent)
        self.top = top  # hug the top edge (under a title) instead of centring vertically
        self.square = square  # as tall as wide, in a layout: grids stacked under titles leave no gap
        self.placeholder = placeholder
        self.selectable = selectable
        self.images: np.ndarray | None = None
        self.captions: list[str] = []
        self.columns = 1
        self.selected: int | None = None
        self._qimage: QImage | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    # -- content ---------------------------------------------------------------------------------
    def set_images(self, images: np.ndarray, columns: int | None = None, captions: list[str] | None = None) -> None:
        from gui.catalog import tile

        self.images = images
        self.columns = columns or max(1, math.ceil(math.sqrt(len(images))))
        self.captions = list(captions or [])
        if self.selected is not None and self.selected >= len(images):
            self.selected = None
        self._qimage = to_qimage(tile(images, self.columns))
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self.placeholder = placeholder
        self.images, self._qimage, self.captions, self.selected = None, None, [], None
        self.update()

    @property
    def count(self) -> int:
        return 0 if self.images is None else len(self.images)

    def sizeHint(self) -> QSize:
        return QSize(260, 260)

    def hasHeightForWidth(self) -> bool:
        return self.square

    def heightForWidth(self, width: int) -> int:
        return width

    # -- geometry ----------------------------------------------------------------------------------
    def _target(self) -> QRect:
        if self._qimage is None:
            return QRect()
        w, h = self._qimage.width(), self._qimage.height()
        scale = min(self.width() / w, self.height() / h)
        if scale >= 2:
            scale = math.floor(scale)  # whole multiples keep pixels square and sharp
        tw, th = max(1, int(w * scale)), max(1, int(h * scale))
        return QRect((self.width() - tw) // 2, 0 if self.top else (self.height() - th) // 2, tw, th)

    def cell_at(self, pos: QPoint) -> int | None:
        if self.images is None:
            return None
        target = self._target()
        if not target.contains(pos):
            return None
        n, h, w, _ = self.images.shape
        scale = target.width() / self._qimage.width()
        x = (pos.x() - target.x()) / scale - PAD
        y = (pos.y() - target.y()) / scale - PAD
        col, row = int(x // (w + PAD)), int(y // (h + PAD))
        if x < 0 or y < 0 or x - col * (w + PAD) >= w or y - row * (h + PAD) >= h:
            return None
        index = row * self.columns + col
        return index if 0 <= col < self.columns and 0 <= index < n else None

    def cell_rect(self, index: int) -> QRect:
        target = self._target()
        _, h, w, _ = self.images.shape
        scale = target.width() / self._qimage.width()
        row, col = divmod(index, self.columns)
        x = target.x() + (PAD + col * (w + PAD)) * scale
        y = target.y() + (PAD + row * (h + PAD)) * scale
        return QRect(int(x), int(y), int(math.ceil(w * scale)), int(math.ceil(h * scale)))

    def cell_center(self, index: int) -> QPoint:
        return self.cell_rect(index).center()

    # -- painting and the mouse -----------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        if self._qimage is None:
            painter.setPen(self.palette().color(self.foregroundRole()))
            painter.drawText(self.rect().adjusted(8, 8, -8, -8),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        if self.images is not None and self.images.shape[-1] == 4:  # transparency shows as a checkerboard
            brush = checker_brush()
            for index in range(self.count):
                painter.fillRect(self.cell_rect(index), brush)
        painter.drawImage(self._target(), self._qimage)
        if self.selected is not None and self.selected < self.count:
            painter.setPen(QPen(QColor("#ff9f1c"), 2))
            painter.drawRect(self.cell_rect(self.selected).adjusted(-1, -1, 1, 1))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index = self.cell_at(event.position().toPoint())
        if index is not None:
            self.sig_hovered.emit(index)
            if index < len(self.captions):
                QToolTip.showText(event.globalPosition().toPoint(), self.captions[index], self)
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        index = self.cell_at(event.position().toPoint())
        if index is not None and event.button() == Qt.MouseButton.LeftButton:
            if self.selectable:
                self.selected = index
                self.update()
            self.sig_clicked.emit(index)
        super().mousePressEvent(event)
