"""One member's losses, live: points go into growing arrays; a ≤ 30 Hz timer redraws what changed.

pyqtgraph does the rest: ``setClipToView`` draws only the visible range and
``setDownsampling(auto=True, mode='peak')`` keeps the drawn points near the pixel count, so the
cost per frame stays flat as a run grows.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QSizePolicy

from gui.theme import THEME
from gui.widgets.series import GrowingSeries

REDRAW_MS = 33  # ≤ 30 Hz


def legend_brush():
    """The plot's background, slightly see-through: legends stay readable over the curves."""
    color = pg.mkColor(THEME.plot_background)
    color.setAlpha(210)
    return pg.mkBrush(color)


def side_legend(item: pg.PlotItem) -> pg.LegendItem:
    """The plot's legend in a column right of its axes, not over the curves (whose newest points,
    the ones an artist watches, are at the right edge); curves plotted with a name join it."""
    legend = pg.LegendItem(labelTextSize="8pt")
    legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # its rows, not the plot's height
    item.layout.addItem(legend, 2, 3)
    item.layout.setAlignment(legend, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    item.legend = legend
    return legend


class LossPlot(pg.PlotWidget):
    def __init__(self, title: str, parent=None):
        super().__init__(parent=parent)
        self.title = title
        self.series: dict[str, GrowingSeries] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._dirty: set[str] = set()
        self.redraws = 0
        item = self.getPlotItem()
        item.setMenuEnabled(False)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setLabel("bottom", "step")
        item.setLabel("left", "loss")
        self.legend = side_legend(item)
        self.setMinimumHeight(170)
        self._timer = QTimer(self)  # armed by new points only: an idle plot costs no wake-ups
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.redraw)
        THEME.sig_changed.connect(self.restyle)
        self.restyle()

    def restyle(self) -> None:
        self.setBackground(THEME.plot_background)
        item = self.getPlotItem()
        item.setTitle(self.title, color=THEME.plot_foreground, size="10pt")
        for axis in ("bottom", "left"):
            ax = item.getAxis(axis)
            ax.setPen(pg.mkPen(THEME.plot_foreground, width=1))
            ax.setTextPen(pg.mkPen(THEME.plot_foreground, width=1))
        for index, (key, curve) in enumerate(self.curves.items()):
            curve.setPen(pg.mkPen(THEME.pen_color(index), width=1))
        self.legend.setLabelTextColor(THEME.plot_foreground)
        self.legend.setBrush(legend_brush())

    def _curve(self, key: str) -> GrowingSeries:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = GrowingSeries()
            curve = self.plot([], [], name=key, pen=pg.mkPen(THEME.pen_color(len(self.curves)), width=1))
            curve.setClipToView(True)
            curve.setDownsampling(auto=True, method="peak")
            self.curves[key] = curve
            self.legend.setLabelTextColor(THEME.plot_foreground)
        return series

    def append(self, step: int, losses: dict[str, float]) -> None:
        for key, value in losses.items():
            self._curve(key).append(step, value)
            self._dirty.add(key)
        if not self._timer.isActive():
            self._timer.start()

    def set_history(self, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.clear_points()
        for key, (steps, values) in curves.items():
            self._curve(key).extend(steps, values)
            self._dirty.add(key)
        self.redraw()

    def clear_points(self) -> None:
        for key, series in self.series.items():
            series.clear()
            self._dirty.add(key)
        self.redraw()

    def truncate(self, step: int) -> None:
        """Forget points after ``step`` (a resume continues from an earlier checkpoint)."""
        for key, series in self.series.items():
            keep = int(np.searchsorted(series.x, step, side="right"))
            if keep < series.n:
                series.n = keep
                self._dirty.add(key)

    def points(self, key: str | None = None) -> int:
        if key is not None:
            return self.series[key].n if key in self.series else 0
        return min((s.n for s in self.series.values()), default=0)

    def redraw(self) -> None:
        if not self._dirty:
            return
        for key in self._dirty:
            series = self.series[key]
            self.curves[key].setData(series.x, series.y)
        self._dirty.clear()
        self.redraws += 1
