"""Metrics page: an evaluation in the background with progress and cancel; a table and a bar chart
of FD / KID / precision / recall per member and fusion; FD over checkpoints as the run goes on."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from gui.bridge import EngineBridge, EvalResult
from gui.catalog import MAX_SAMPLES, MIN_EVAL_SAMPLES
from gui.theme import THEME
from gui.widgets.loss_plot import legend_brush, side_legend

COLUMNS = (("fd", "FD ↓"), ("kid", "KID ↓"), ("precision", "precision ↑"), ("recall", "recall ↑"),
           ("density", "density ↑"), ("coverage", "coverage ↑"), ("fd_ratio", "FD / floor ↓"),
           ("samples_per_s", "samples/s"))
COLUMN_TIPS = {
    "fd": "Fréchet distance between the samples' and the reference images' features (the judge CNN's, "
          "or Inception's): lower is closer",
    "kid": "Kernel inception distance (unbiased MMD², as measured: `evaluate`'s table prints it ×10³)",
    "precision": "share of samples that look like some real image (inside a real image's neighbourhood)",
    "recall": "share of real images that some sample looks like: low when the samples lack variety",
    "density": "how many real neighbourhoods each sample falls in, ÷ k: above 1 when samples crowd the "
               "likeliest images",
    "coverage": "share of real images with a sample in their neighbourhood (as many real images as samples)",
    "fd_ratio": "FD ÷ the floor (real training images against the reference): 1 is as good as real data",
    "samples_per_s": "images made per second, on this machine",
}
HISTORY_TITLE = "FD over checkpoints (each evaluation adds a point)"
CHART_METRICS = (("fd", "FD (lower is better)"), ("kid", "KID (lower is better)"),
                 ("precision", "precision (higher is better)"), ("recall", "recall (higher is better)"))


def _format(value: Any) -> str:
    if not isinstance(value, (int, float)) or not np.isfinite(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def history_style(index: int, member: bool) -> dict[str, Any]:
    """Pen and symbol of the index-th series: members solid with dots, fusions dashed with a square,
    triangle or diamond (the shape changes each time the colours come round again), so a dozen
    series stay apart with the theme's seven colours."""
    color = THEME.pen_color(index)
    style = Qt.PenStyle.SolidLine if member else Qt.PenStyle.DashLine
    symbol = "o" if member else ("s", "t", "d")[index // THEME.pen_count() % 3]
    return {"pen": pg.mkPen(color, width=1.5, style=style), "symbol": symbol, "symbolSize": 7,
            "symbolBrush": color, "symbolPen": None}


class MetricsPage(QWidget):
    sig_error = Signal(str)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.run: str | None = None
        self.report: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.running = False
        self._checkpoint_waiting = False  # a checkpoint came while evaluating: measure it next
        self.fusions: dict[str, Any] | None = None   # None: every strategy the engine evaluates by default

        self.n = QSpinBox()
        self.n.setRange(MIN_EVAL_SAMPLES, MAX_SAMPLES)
        self.n.setValue(1000)
        self.n.setPrefix("n = ")
        self.n.setToolTip("images sampled per member and per fusion")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("seed ")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setToolTip("measure every member and fusion on the latest checkpoint (F5)")
        self.cancel_button = QPushButton("Cancel")
        self.auto = QCheckBox("evaluate each new checkpoint")
        self.auto.setToolTip("while training, measure every checkpoint as it is saved: FD over checkpoints")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMinimumWidth(120)
        self.progress_label = QLabel("Evaluate the latest checkpoint against held-out images.")
        self.progress_label.setWordWrap(True)  # "Saved to <a long run path>" must not be cut in a narrow window
        top = QHBoxLayout()
        for widget in (self.n, self.seed, self.evaluate_button, self.cancel_button):
            top.addWidget(widget)
        top.addWidget(self.progress, 1)

        self.table = QTableWidget(0, len(COLUMNS) + 1)
        self.table.setHorizontalHeaderLabels(["", *[label for _, label in COLUMNS]])
        for column, (key, _) in enumerate(COLUMNS, start=1):
            self.table.horizontalHeaderItem(column).setToolTip(COLUMN_TIPS[key])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)

        self.metric = QComboBox()
        for key, label in CHART_METRICS:
            self.metric.addItem(label, key)
        self.bars = pg.PlotWidget()
        self.bars.getPlotItem().setMenuEnabled(False)
        self.bars.setMinimumHeight(200)
        self.fd_history = pg.PlotWidget()
        self.fd_history.getPlotItem().setMenuEnabled(False)
        self.fd_history.getPlotItem().setLabel("bottom", "step")
        self.fd_history.getPlotItem().setLabel("left", "FD")
        self.fd_history.setMinimumHeight(200)
        self._history_legend = side_legend(self.fd_history.getPlotItem())
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        chart_column = QVBoxLayout()
        chart_head = QHBoxLayout()
        chart_head.addWidget(QLabel("Bar chart of"))
        chart_head.addWidget(self.metric, 1)
        chart_column.addLayout(chart_head)
        chart_column.addWidget(self.bars, 1)
        chart_widget = QWidget()
        chart_widget.setLayout(chart_column)
        history_column = QVBoxLayout()
        self.history_title = QLabel(HISTORY_TITLE)
        history_column.addWidget(self.history_title)
        history_column.addWidget(self.fd_history, 1)
        history_widget = QWidget()
        history_widget.setLayout(history_column)
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(chart_widget)
        charts.addWidget(history_widget)

        layout = QVBoxLayout(self)
        status = QHBoxLayout()
        status.addWidget(self.progress_label, 1)
        status.addWidget(self.auto)
        self.progress_label.setWordWrap(True)
        layout.addLayout(top)
        layout.addLayout(status)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.summary)
        layout.addWidget(charts, 3)

        self.evaluate_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.metric.currentIndexChanged.connect(lambda _i: self._draw_bars())
        bridge.sig_eval_progress.connect(self._progress)
        bridge.sig_eval_ready.connect(self._ready)
        bridge.sig_eval_failed.connect(self._failed)
        bridge.sig_eval_cancelled.connect(self._cancelled)
        THEME.sig_changed.connect(self.restyle)
        self.restyle()
        self._set_running(False)

    def restyle(self) -> None:
        for plot in (self.bars, self.fd_history):
            plot.setBackground(THEME.plot_background)
            for axis in ("bottom", "left"):
                plot.getPlotItem().getAxis(axis).setPen(pg.mkPen(THEME.plot_foreground, width=1))
                plot.getPlotItem().getAxis(axis).setTextPen(pg.mkPen(THEME.plot_foreground, width=1))
        self._history_legend.setLabelTextColor(THEME.plot_foreground)
        self._history_legend.setBrush(legend_brush())
        self._draw_bars()
        self._draw_history()

    # -- the run ----------------------------------------------------------------------------------------
    def set_run(self, run: str | None, history: list[dict[str, Any]] | None = None) -> None:
        self.run = run
        self.history = list(history or [])
        self.report = self.history[-1] if self.history else None
        self._fill_table()
        self._draw_bars()
        self._draw_history()
        self._set_running(self.running)  # an evaluation in flight keeps going

    # -- running -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.run is None or self.running:
            return
        self._set_running(True)
        self.progress.setValue(0)
        self.progress_label.setText("Starting the evaluation…")
        self.bridge.evaluate(self.run, self.n.value(), self.fusions, self.seed.value())

    def checkpoint_saved(self, step: int) -> None:
        """A new checkpoint: measure it if asked to; while an evaluation runs, the newest checkpoint
        saved meanwhile is measured when it ends (those in between are skipped)."""
        if self.auto.isChecked() and self.run is not None:
            self._checkpoint_waiting = self.running
            self.start()

    def cancel(self) -> None:
        if self.running:
            self.progress_label.setText("Cancelling…")
            self.bridge.cancel_evaluation()

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.evaluate_button.setEnabled(not running and self.run is not None)
        self.cancel_button.setEnabled(running)
        self.n.setEnabled(not running)
        self.seed.setEnabled(not running)

    def _progress(self, label: str, fraction: float) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        self.progress_label.setText(f"Evaluating: {label} ({fraction:.0%})")

    def _ready(self, result: EvalResult) -> None:
        self._set_running(False)
        if self._checkpoint_waiting and self.auto.isChecked():
            self._checkpoint_waiting = False
            QTimer.singleShot(0, self.start)  # after this report is shown
        self.progress.setValue(1000)
        self.report = result.report
        self.history = [r for r in self.history if r.get("step") != result.report.get("step")
                        or r.get("n") != result.report.get("n")] + [result.report]
        self.history.sort(key=lambda r: r.get("step", 0))
        self.progress_label.setText(f"Done: step {result.report.get('step', 0):,}, n = {result.report.get('n')}. "
                                    f"Saved to {result.path}")
        self._fill_table()
        self._draw_bars()
        self._draw_history()

    def _failed(self, message: str) -> None:
        self._set_running(False)
        self._checkpoint_waiting = False
        self.progress.setValue(0)
        self.progress_label.setText(f"Evaluation failed: {message}")
        self.sig_error.emit(message)

    def _cancelled(self) -> None:
        self._set_running(False)
        self._checkpoint_waiting = False
        self.progress.setValue(0)
        self.progress_label.setText("Evaluation cancelled; nothing was saved.")

    # -- drawing -------------------------------------------------------------------------------------------
    def rows(self) -> list[tuple[str, str, dict[str, Any]]]:
        if not self.report:
            return []
        return ([("member", name, row) for name, row in self.report.get("members", {}).items()]
                + [("fusion", name, row) for name, row in self.report.get("fusions", {}).items()])

    def _fill_table(self) -> None:
        rows = self.rows()
        self.table.setRowCount(len(rows))
        for r, (kind, name, values) in enumerate(rows):
            label = QTableWidgetItem(name if kind == "member" else f"{name} (fusion)")
            self.table.setItem(r, 0, label)
            for c, (key, _) in enumerate(COLUMNS, start=1):
                item = QTableWidgetItem(_format(values.get(key)))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        if self.report:
            floor = self.report.get("floor", {}).get("fd")
            skipped = self.report.get("skipped") or {}
            text = f"Step {self.report.get('step', 0):,}, n = {self.report.get('n')}, floor FD = {_format(floor)}."
            if rows:
                best = min(rows, key=lambda row: row[2].get("fd", np.inf))
                text += f" Lowest FD: {best[1]} ({_format(best[2].get('fd'))})."
            if skipped:
                text += " Skipped: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            self.summary.setText(text)
        else:
            self.summary.setText("No evaluation yet for this run.")

    def _draw_bars(self) -> None:
        """Horizontal bars, names on the left axis (long strategy names never overlap)."""
        plot = self.bars.getPlotItem()
        plot.clear()
        rows = self.rows()
        key = self.metric.currentData()
        member, fusion = THEME.pen_color(0), THEME.pen_color(1)
        plot.setLabel("bottom", f"{self.metric.currentText()} — <span style='color:{member}'>■ members</span> "
                                f"<span style='color:{fusion}'>■ fusions</span>")
        if not rows:
            plot.getAxis("left").setTicks([[]])
            return
        widths = np.nan_to_num([float(values.get(key, np.nan)) for _, _, values in rows])
        ys = np.arange(len(rows))[::-1]  # first row on top
        brushes = [pg.mkBrush(member if kind == "member" else fusion) for kind, _, _ in rows]
        plot.addItem(pg.BarGraphItem(x0=np.zeros(len(rows)), y=ys, width=widths, height=0.7, brushes=brushes,
                                     pen=pg.mkPen(THEME.plot_foreground, width=1)))
        plot.getAxis("left").setTicks([[(int(y), name) for y, (_, name, _) in zip(ys, rows)]])
        plot.setYRange(-0.6, len(rows) - 0.4, padding=0)
        plot.setXRange(0, max(float(widths.max()), 1e-9) * 1.05, padding=0)

    def _draw_history(self) -> None:
        plot = self.fd_history.getPlotItem()
        plot.clear()
        self._history_legend.clear()
        series: dict[str, list[tuple[int, float]]] = {}
        n = (self.report or {}).get("n")  # FD depends on n: one curve per n, the one on show
        shown = [report for report in self.history if n is None or report.get("n") == n]
        left_out = len(self.history) - len(shown)
        self.history_title.setText(HISTORY_TITLE if n is None else f"{HISTORY_TITLE[:-1]}, n = {n:,}"
                                   + (f"; {left_out} at other n not shown)" if left_out else ")"))
        for report in shown:
            step = report.get("step", 0)
            for table in ("members", "fusions"):
                for name, row in (report.get(table) or {}).items():
                    if isinstance(row, dict) and isinstance(row.get("fd"), (int, float)):
                        series.setdefault(name, []).append((step, float(row["fd"])))
        members = {name for report in shown for name in (report.get("members") or {})}
        for index, (name, points) in enumerate(series.items()):
            points.sort()
            steps, fds = [p[0] for p in points], [p[1] for p in points]
            plot.plot(steps, fds, name=name, **history_style(index, name in members))
