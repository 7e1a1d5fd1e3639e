"""Data page: the bundled Fashion-MNIST, an image folder or an .npz; what will be trained on
(thumbnails, count, skipped files) and the preprocessing (size, channels, flips) previewed live."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QFont
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from gui.bridge import DataPreview, EngineBridge
from gui.catalog import AUTO, CHANNEL_NAMES, FASHION_MNIST, HOLDOUT, UserError, validate_data
from gui.widgets.image_grid import ImageGrid

THUMBNAILS = 48
AUTO_SIZE = 7  # the size box's "auto" (below the smallest size, 8)
PREVIEW_DELAY_MS = 250


class DataPage(QWidget):
    sig_changed = Signal()
    sig_error = Signal(str)
    sig_loaded = Signal()  # the current settings were read and previewed

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.preview: DataPreview | None = None
        self.error = ""
        self.loading = False  # the settings changed and their preview (or failure) has not come back yet
        self.setAcceptDrops(True)

        self.bundled = QRadioButton("Bundled Fashion-MNIST (60,000 clothing images)")
        self.custom = QRadioButton("My pictures: a folder or an .npz file")
        self.bundled.setChecked(True)
        self.path = QLineEdit()
        self.path.setPlaceholderText("drop a folder or an .npz file here, or choose one")
        self.choose_folder = QPushButton("Choose folder…")
        self.choose_npz = QPushButton("Choose .npz…")
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(self.choose_folder)
        path_row.addWidget(self.choose_npz)
        source_box = QGroupBox("Source")
        source_layout = QVBoxLayout(source_box)
        source_layout.addWidget(self.bundled)
        source_layout.addWidget(self.custom)
        source_layout.addLayout(path_row)

        self.size = QSpinBox()
        self.size.setRange(AUTO_SIZE, 256)  # the lowest value shows as "auto"
        self.size.setSpecialValueText("auto (the pictures' size)")
        self.size.setSuffix(" px")
        self.channels = QComboBox()
        self.channels.addItem("auto (what the pictures are)", AUTO)
        self.channels.addItem("grey (1 channel)", 1)
        self.channels.addItem("colour (3 channels, RGB)", 3)
        self.channels.addItem("colour + transparency (4 channels, RGBA)", 4)
        self.flip = QCheckBox("random horizontal flips while training")
        self.holdout = QDoubleSpinBox()
        self.holdout.setRange(0, 50)
        self.holdout.setDecimals(0)
        self.holdout.setSuffix(" % (never trained on)")
        self.holdout.setToolTip("A folder's or .npz's held-out share: the reference its evaluation compares "
                                "with (Fashion-MNIST has its own test split). 0: none.")
        self.chosen = QLabel("")
        self.chosen.setWordWrap(True)
        prep_box = QGroupBox("Preprocessing")
        prep = QFormLayout(prep_box)
        prep.addRow("image size", self.size)
        prep.addRow("channels", self.channels)
        prep.addRow("", self.chosen)
        prep.addRow("augmentation", self.flip)
        prep.addRow("held out", self.holdout)

        self.count = QLabel("—")
        font = QFont(self.count.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.count.setFont(font)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("What was loaded and which files were skipped, with the reason.")
        self.report.setMaximumHeight(150)
        self.thumbnails = ImageGrid("Loading a preview…", top=True)
        self.thumbnails.setMinimumSize(240, 240)

        left = QVBoxLayout()
        left.addWidget(source_box)
        left.addWidget(prep_box)
        left.addWidget(QLabel("Images that will be trained on"))
        left.addWidget(self.count)
        left.addWidget(QLabel("Load report"))
        left.addWidget(self.report)
        left.addStretch(1)
        right = QVBoxLayout()
        self.thumbnails_title = QLabel("Preview (an even spread of the set, after preprocessing)")
        right.addWidget(self.thumbnails_title)
        right.addWidget(self.thumbnails, 1)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 2)
        layout.addLayout(right, 3)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        for signal in (self.bundled.toggled, self.size.valueChanged, self.channels.currentIndexChanged,
                       self.flip.toggled, self.holdout.valueChanged):
            signal.connect(self._changed)
        self.path.editingFinished.connect(self._path_edited)
        self.path.textEdited.connect(self._path_edited)  # typed: the old error no longer applies
        self.choose_folder.clicked.connect(self._pick_folder)
        self.choose_npz.clicked.connect(self._pick_npz)
        bridge.sig_data_preview.connect(self._show_preview)
        bridge.sig_data_failed.connect(self._show_failure)
        bridge.sig_data_progress.connect(self._show_progress)

    # -- the configuration -------------------------------------------------------------------------
    def raw(self) -> dict[str, Any]:
        source = FASHION_MNIST if self.bundled.isChecked() else self.path.text().strip()
        size = AUTO if self.size.value() == AUTO_SIZE else self.size.value()
        return {"source": source, "size": size, "channels": self.channels.currentData(),
                "flip": self.flip.isChecked(), "holdout": round(self.holdout.value() / 100, 4)}

    def set_config(self, config: dict[str, Any], refresh: bool = True) -> None:
        widgets = (self.bundled, self.custom, self.path, self.size, self.channels, self.flip, self.holdout)
        for widget in widgets:
            widget.blockSignals(True)
        source = str(config.get("source", FASHION_MNIST))
        self.bundled.setChecked(source == FASHION_MNIST)
        self.custom.setChecked(source != FASHION_MNIST)
        self.path.setText("" if source == FASHION_MNIST else source)
        size, channels = config.get("size", AUTO), config.get("channels", AUTO)
        self.size.setValue(AUTO_SIZE if size == AUTO else int(size))
        self.channels.setCurrentIndex(max(0, self.channels.findData(channels if channels == AUTO else int(channels))))
        self.flip.setChecked(bool(config.get("flip", False)))
        self.holdout.setValue(100 * float(config.get("holdout", HOLDOUT)))
        for widget in widgets:
            widget.blockSignals(False)
        if refresh:
            self.refresh()

    def set_source(self, source: str) -> None:
        self.set_config({**self.raw(), "source": source})
        self.sig_changed.emit()

    def set_read_only(self, read_only: bool) -> None:
        for widget in (self.bundled, self.custom, self.path, self.choose_folder, self.choose_npz, self.size,
                       self.channels, self.flip, self.holdout):
            widget.setEnabled(not read_only)
        self.setAcceptDrops(not read_only)

    def _normalised(self) -> dict[str, Any] | None:
        """The settings as the engine holds them (a folder's path made absolute), None if refused."""
        try:
            return validate_data(self.raw())
        except UserError:
            return None

    # -- previews ------------------------------------------------------------------------------------
    def _changed(self, *_args) -> None:
        self.loading, self.error = True, ""  # the last error was about other settings
        self.sig_changed.emit()
        self._timer.start()

    def _path_edited(self) -> None:
        if self.path.text().strip():
            self.custom.setChecked(True)
        self._changed()

    def read_now(self) -> None:
        """Read settings that are waiting out the typing pause now (Start was pressed)."""
        if self._timer.isActive():
            self.refresh()

    def refresh(self) -> None:
        self._timer.stop()
        raw = self.raw()
        if not raw["source"]:
            self._show_failure("choose a folder of images or an .npz file (or the bundled Fashion-MNIST)", False)
            return
        self.count.setText("loading…")
        self.loading, self.error = True, ""
        self.bridge.preview_data(raw, THUMBNAILS)

    def _show_preview(self, preview: DataPreview) -> None:
        if preview.config != self._normalised():
            return  # an older request; the newer one is on its way
        self.preview, self.error, self.loading = preview, "", False
        images = preview.images
        if preview.config.get("flip"):  # show the augmentation: every other picture mirrored
            images = images.copy()
            images[1::2] = images[1::2, :, ::-1]
        self.thumbnails.set_images(np.ascontiguousarray(images), columns=8)
        held = f" (+ {preview.heldout:,} held out)" if preview.heldout else ""
        self.count.setText(f"{preview.count:,} images{held}")
        self.chosen.setText(self._chosen_text(preview))
        classes = f"\nClasses: {', '.join(preview.class_names)}" if preview.class_names else ""
        self.report.setPlainText(preview.report + classes)
        self.sig_loaded.emit()

    @staticmethod
    def _chosen_text(preview: DataPreview) -> str:
        """What "auto" settled on, in words (the report says why)."""
        asked, got = preview.config, preview.resolved
        parts = []
        if asked.get("size") == AUTO and got.get("size") != AUTO:
            parts.append(f"{got['size']} px")
        if asked.get("channels") == AUTO and got.get("channels") != AUTO:
            parts.append(CHANNEL_NAMES.get(got["channels"], str(got["channels"])))
        return f"auto chose: {', '.join(parts)}" if parts and preview.config.get("source") != FASHION_MNIST else ""

    def _show_progress(self, label: str, fraction: float) -> None:
        if self.loading:
            self.count.setText(f"{label}… {fraction:.0%}")

    def _show_failure(self, message: str, announce: bool = True) -> None:
        self.preview, self.error, self.loading = None, message, False
        self.count.setText("no usable images")
        self.chosen.setText("")
        self.report.setPlainText(message)
        self.thumbnails.clear("Nothing to show: " + message)
        if announce:
            self.sig_error.emit(message)

    # -- choosing a source: dialogs and drag-and-drop ---------------------------------------------
    def ask_folder(self) -> str:
        return QFileDialog.getExistingDirectory(self, "Choose a folder of images")

    def ask_npz(self) -> str:
        return QFileDialog.getOpenFileName(self, "Choose an .npz of uint8 images", "", "NumPy archives (*.npz)")[0]

    def _pick_folder(self) -> None:
        chosen = self.ask_folder()
        if chosen:
            self.set_source(chosen)

    def _pick_npz(self) -> None:
        chosen = self.ask_npz()
        if chosen:
            self.set_source(chosen)

    @staticmethod
    def _dropped_path(event) -> str | None:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        local = [Path(url.toLocalFile()) for url in urls if url.isLocalFile()]
        usable = [p for p in local if p.is_dir() or p.suffix.lower() == ".npz"]
        return str(usable[0]) if usable else None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_path(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        path = self._dropped_path(event)
        if path:
            self.set_source(path)
            event.acceptProposedAction()
