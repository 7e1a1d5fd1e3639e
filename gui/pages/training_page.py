"""Training page: start, pause, resume, stop; one live loss plot and one fixed-seed preview per
member; step, images/s, elapsed and ETA."""
from __future__ import annotations

import collections
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from gui.catalog import COMPILE_MODES, DEVICES, PRECISIONS, TRAIN_DEFAULTS
from gui.widgets.image_grid import ImageGrid
from gui.widgets.loss_plot import LossPlot

RATE_WINDOW = 20  # step reports used for the images/s and ETA estimates


def clock(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


WARNING_STYLE = "color: #b5451b; font-weight: bold;"  # a member's collapse or blur warning


class MemberRow(QWidget):
    """A member's loss plot beside its latest fixed-seed preview."""

    def __init__(self, name: str, title: str, can_sample: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.plot = LossPlot(f"{title} · {name}")
        self.preview = ImageGrid("The fixed-seed preview appears here every few steps." if can_sample
                                 else "The judge makes no images.")
        self.preview.setFixedSize(190, 190)
        self.preview_caption = QLabel("")
        self.preview_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.warning = QLabel("")  # collapse or blur, in words (engine/training/diagnostics.py)
        self.warning.setWordWrap(True)
        self.warning.setFixedWidth(190)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.warning.hide()
        side = QVBoxLayout()
        side.addWidget(self.preview)
        side.addWidget(self.preview_caption)
        side.addWidget(self.warning)
        side.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addLayout(side)
        self.setMinimumHeight(215)

    def show_preview(self, step: int, images: np.ndarray, warning: str = "") -> None:
        self.preview.set_images(images, columns=4)
        self.preview_caption.setText(f"step {step:,}")
        if warning:
            self.warning.setText(warning)
            self.warning.show()


class TrainingPage(QWidget):
    sig_start = Signal()
    sig_pause = Signal()
    sig_resume = Signal()
    sig_stop = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.rows: dict[str, MemberRow] = {}
        self.total = 0
        self.step = 0
        self.batch_total = 0
        self.logged: dict[str, list[int]] = {}     # member → steps received (for checks and tests)
        self._rate: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)

        self.start_button = QPushButton("Start")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.start_button.setToolTip("start or continue training (Ctrl+Return)")
        self.pause_button.setToolTip("pause after the current step (Ctrl+P)")
        self.resume_button.setToolTip("continue a paused run (Ctrl+P)")
        self.stop_button.setToolTip("stop after the current step and save a checkpoint (Ctrl+.)")
        self.steps = QSpinBox()
        self.steps.setRange(1, 10**9)
        self.steps.setValue(TRAIN_DEFAULTS.steps)
        self.steps.setGroupSeparatorShown(True)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(TRAIN_DEFAULTS.seed)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(TRAIN_DEFAULTS.device)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setCurrentText(TRAIN_DEFAULTS.precision)
        self.precision.setToolTip("autocast for the forward passes; auto: what bench speed measured fastest for "
                                  "each member (bf16 on a CPU that computes in bf16 natively, else fp32)")
        self.compile = QComboBox()
        self.compile.addItems(COMPILE_MODES)
        self.compile.setCurrentText(TRAIN_DEFAULTS.compile)
        self.compile.setToolTip("torch.compile on a CUDA GPU; auto: CUDA graphs once a run is long enough to "
                                "repay the compile (see docs/performance.md); step-graph: no compiling, each "
                                "member's whole training step replayed as one CUDA graph; falls back to eager "
                                "if it fails")
        self.preview_every = QSpinBox()
        self.preview_every.setRange(1, 10**9)
        self.preview_every.setValue(50)  # more often than the engine's default: the window shows them
        self.checkpoint_every = QSpinBox()
        self.checkpoint_every.setRange(1, 10**9)
        self.checkpoint_every.setValue(TRAIN_DEFAULTS.checkpoint_every)
        self.log_every = QSpinBox()
        self.log_every.setRange(1, 10**6)
        self.log_every.setValue(TRAIN_DEFAULTS.log_every)

        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(button)
        settings = QGroupBox("Run")
        form = QFormLayout(settings)
        form.addRow("ensemble steps", self.steps)
        form.addRow("seed", self.seed)
        form.addRow("device", self.device)
        form.addRow("precision", self.precision)
        form.addRow("GPU compile", self.compile)
        form.addRow("preview every", self.preview_every)
        form.addRow("checkpoint every", self.checkpoint_every)
        form.addRow("log every", self.log_every)

        self.state = QLabel("Not started")
        bold = QFont(self.state.font())
        bold.setBold(True)
        self.state.setFont(bold)
        self.step_label, self.rate_label = QLabel("—"), QLabel("—")
        self.elapsed_label, self.eta_label = QLabel("—"), QLabel("—")
        stats = QGroupBox("Progress")
        grid = QGridLayout(stats)
        for row, (name, label) in enumerate((("step", self.step_label), ("images/s", self.rate_label),
                                             ("elapsed", self.elapsed_label), ("ETA", self.eta_label))):
            grid.addWidget(QLabel(name), row, 0)
            grid.addWidget(label, row, 1)
        self.run_label = QLabel("")
        self.run_label.setWordWrap(True)
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.paths_label = QLabel("")
        self.paths_label.setWordWrap(True)
        self.paths_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.paths_label.setToolTip("How each member trains on this device: precision, memory layout, "
                                    "optimizer kernels, compiling or CUDA graphs (docs/performance.md)")

        side = QVBoxLayout()
        side.addLayout(buttons)
        side.addWidget(self.state)
        side.addWidget(stats)
        side.addWidget(settings)
        side.addWidget(self.run_label)
        side.addWidget(self.paths_label)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(300)
        side_scroll = QScrollArea()  # small screens scroll the controls instead of growing the window
        side_scroll.setWidget(side_widget)
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        side_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        side_scroll.setFixedWidth(300 + side_scroll.verticalScrollBar().sizeHint().width())

        self._plots = QWidget()
        self._plots_layout = QVBoxLayout(self._plots)
        self._plots_layout.addStretch(1)
        self.placeholder = QLabel("Add members, then press Start: a live loss plot and a preview grid appear "
                                  "here for each member.")
        self.placeholder.setWordWrap(True)
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._plots_layout.insertWidget(0, self.placeholder)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self._plots)

        layout = QHBoxLayout(self)
        layout.addWidget(side_scroll)
        layout.addWidget(scroll, 1)

        self.start_button.clicked.connect(self.sig_start)
        self.pause_button.clicked.connect(self.sig_pause)
        self.resume_button.clicked.connect(self.sig_resume)
        self.stop_button.clicked.connect(self.sig_stop)
        self.set_state("idle")

    # -- configuration ---------------------------------------------------------------------------
    def train_raw(self) -> dict[str, Any]:
        return {"steps": self.steps.value(), "seed": self.seed.value(), "device": self.device.currentText(),
                "preview_every": self.preview_every.value(), "checkpoint_every": self.checkpoint_every.value(),
                "log_every": self.log_every.value(), "precision": self.precision.currentText(),
                "compile": self.compile.currentText()}

    def set_train_config(self, train: dict[str, Any]) -> None:
        self.steps.setValue(int(train.get("steps", self.steps.value())))
        self.seed.setValue(int(train.get("seed", TRAIN_DEFAULTS.seed)))
        self.device.setCurrentText(str(train.get("device", TRAIN_DEFAULTS.device)))
        self.preview_every.setValue(int(train.get("preview_every", self.preview_every.value())))
        self.checkpoint_every.setValue(int(train.get("checkpoint_every", self.checkpoint_every.value())))
        self.log_every.setValue(int(train.get("log_every", self.log_every.value())))
        self.precision.setCurrentText(str(train.get("precision", TRAIN_DEFAULTS.precision)))
        self.compile.setCurrentText(str(train.get("compile", TRAIN_DEFAULTS.compile)))

    def set_run_fixed(self, fixed: bool) -> None:
        """An existing run keeps its seed and schedule; only the step target can grow."""
        for widget in (self.seed, self.device, self.preview_every, self.checkpoint_every, self.log_every,
                       self.precision, self.compile):
            widget.setEnabled(not fixed)

    def set_members(self, members: list[tuple[str, str, bool]], batch_total: int) -> None:
        """(name, title, can_sample) per member, in run order; clears plots and counters."""
        for row in self.rows.values():
            row.setParent(None)
            row.deleteLater()
        self.rows.clear()
        self.logged = {name: [] for name, _, _ in members}
        for index, (name, title, can_sample) in enumerate(members):
            row = MemberRow(name, title, can_sample)
            self.rows[name] = row
            self._plots_layout.insertWidget(index, row)
        self.placeholder.setVisible(not members)
        self.batch_total = batch_total
        self._rate.clear()
        self.step = 0

    # -- live updates --------------------------------------------------------------------------------
    def set_state(self, state: str, text: str | None = None) -> None:
        """idle | starting | training | pausing | paused | stopping."""
        self.state_name = state
        labels = {"idle": "Not started", "starting": "Starting the trainer…", "training": "Training",
                  "pausing": "Pausing…", "paused": "Paused", "stopping": "Stopping and saving a checkpoint…"}
        self.state.setText(text or labels.get(state, state))
        running = state in ("starting", "training", "pausing", "paused", "stopping")
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(state == "training")
        self.resume_button.setEnabled(state == "paused")
        self.stop_button.setEnabled(state in ("starting", "training", "pausing", "paused"))
        self.steps.setEnabled(not running)

    def set_notes(self, text: str) -> None:
        """How each member trains (one line each, from the trainer: "dcgan: fp32, … on cpu"), or "" to
        clear. The device the lines share goes into the heading, and paths every member shares are
        said once, so the lines fit the side panel."""
        lines = text.splitlines()
        suffix = " on " + lines[0].rpartition(" on ")[2] if lines and " on " in lines[0] else ""
        lines = [line.removesuffix(suffix) for line in lines] if suffix else lines
        paths = {line.partition(": ")[2] for line in lines}
        if len(lines) > 1 and len(paths) == 1 and all(": " in line for line in lines):
            lines = [f"every member: {paths.pop()}"]
        self.paths_label.setText(f"How the members train{suffix}:\n" + "\n".join(lines) if lines else "")

    def set_started(self, run: str, step: int, total: int) -> None:
        self.total, self.step = total, step
        self.run_label.setText(f"Run folder: {run}")
        self._rate.clear()
        self._show_counters(None)

    def add_steps(self, events) -> None:
        last = None
        for event in events:
            row = self.rows.get(event.member)
            if row is not None:
                row.plot.append(event.step, event.losses)
            self.logged.setdefault(event.member, []).append(event.step)
            last = event
        if last is None:
            return
        self.step = max(self.step, last.step)
        if not self._rate or self._rate[-1][1] != last.step:
            self._rate.append((last.elapsed, last.step))
        self._show_counters(last.elapsed)

    def _show_counters(self, elapsed: float | None) -> None:
        self.step_label.setText(f"{self.step:,} / {self.total:,}" if self.total else f"{self.step:,}")
        steps_per_s = None
        if len(self._rate) >= 2:
            (t0, s0), (t1, s1) = self._rate[0], self._rate[-1]
            if t1 > t0:
                steps_per_s = (s1 - s0) / (t1 - t0)
        if steps_per_s:
            self.rate_label.setText(f"{steps_per_s * self.batch_total:,.0f}  ({steps_per_s:.2f} steps/s)")
            self.eta_label.setText(clock(max(0, self.total - self.step) / steps_per_s))
        elif elapsed is None:
            self.rate_label.setText("—")
            self.eta_label.setText("—")
        if elapsed is not None:
            self.elapsed_label.setText(clock(elapsed))

    def show_preview(self, event) -> None:
        """A PreviewReady: the images, the diversity and sharpness ratios (plotted with the losses)
        and, when one stayed low, the warning."""
        row = self.rows.get(event.member)
        if row is None:
            return
        row.show_preview(event.step, event.images, event.warning)
        ratios = {k: v for k, v in (("diversity", event.diversity), ("sharpness", event.sharpness)) if v == v}
        if ratios:
            row.plot.append(event.step, ratios)

    def set_history(self, curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
                    previews: dict[str, np.ndarray], step: int, total: int, elapsed: float) -> None:
        for name, row in self.rows.items():
            row.plot.set_history(curves.get(name, {}))
            self.logged[name] = [int(s) for s in next(iter(curves.get(name, {}).values()), (np.array([]),))[0]]
            if name in previews:
                row.show_preview(step, previews[name])
        self.step, self.total = step, total
        self._rate.clear()
        self._show_counters(elapsed)
        self.eta_label.setText("—")
