"""Gallery page: for one seed, the fused grid beside each member's grid; the strategy's controls
are generated from its declared parameters; every change re-fuses in the background. Hovering or
clicking an image says who made it; the selected image or the whole grid exports as a PNG that
carries its parameters. Below the grids, the explore panel (gui/pages/explore_panel.py): more like
the selected image, a strip between two, the nearest training images, sprite sheets and folders."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QFrame, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from gui.bridge import GALLERY_N, EngineBridge, GalleryResult
from gui.catalog import UserError, export_png, fusion_specs, tile, validate_fusion
from gui.pages.explore_panel import ExplorePanel
from gui.widgets.image_grid import ImageGrid
from gui.widgets.param_form import ParamForm

REFUSE_DELAY_MS = 120


class SidewaysScroll(QScrollArea):
    """Scrolls its widget sideways only: it is always as tall as the widget needs (its minimum
    height follows the widget's layout), so in a narrow window it scrolls instead of widening it."""

    def __init__(self, widget: QWidget):
        super().__init__()
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit()

    def _fit(self) -> None:
        """As tall as the widget is at this width (wrapped labels make its height follow its width)."""
        widget = self.widget()
        width = max(self.viewport().width(), widget.minimumSizeHint().width())
        height = widget.heightForWidth(width) if widget.hasHeightForWidth() else -1
        height = max(height, widget.minimumSizeHint().height())
        self.setMinimumHeight(height + self.horizontalScrollBar().sizeHint().height())

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._fit()


class GalleryPage(QWidget):
    sig_error = Signal(str)
    sig_exported = Signal(str)

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.specs = fusion_specs()
        self.run: str | None = None
        self.sampling_members: list[str] = []
        self.scoring_members: list[str] = []  # who may vote
        self.result: GalleryResult | None = None
        self.requested: tuple | None = None
        self.selection: tuple[str, int] | None = None   # ("fused" | member name, index)
        self.form: ParamForm | None = None
        self.pending = False
        self.stale = False  # the grids are from earlier settings: the current ones were refused or failed

        self.strategy = QComboBox()
        self.strategy.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.strategy.setMinimumContentsLength(14)
        for name, spec in self.specs.items():
            self.strategy.addItem(f"{spec.title} ({name})", name)
        self.strategy.setCurrentIndex(max(0, self.strategy.findData("mixture")))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.klass = QComboBox()  # "any class", then each class the run's members learnt
        self.set_classes(())
        self.prev_seed = QPushButton("◀ Previous seed")
        self.next_seed = QPushButton("Next seed ▶")
        self.prev_seed.setToolTip("previous seed (PgUp)")
        self.next_seed.setToolTip("next seed (PgDown)")
        self.export_image = QPushButton("Export selected image…")
        self.export_grid = QPushButton("Export fused grid…")
        self.export_grid.setToolTip("save the fused grid as PNG with its parameters embedded (Ctrl+E)")
        self.provenance = QLabel("Hover over or click an image to see which member made it.")
        self.provenance.setWordWrap(True)
        self.status = QLabel("Train or open a run to see its samples here.")
        self.status.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.hide()

        self._controls_box = QGroupBox("Strategy parameters")
        self._controls_layout = QVBoxLayout(self._controls_box)
        seeds = QHBoxLayout()
        seeds.addWidget(self.prev_seed)
        seeds.addWidget(self.next_seed)
        picker = QFormLayout()
        picker.addRow("strategy", self.strategy)
        picker.addRow("seed", self.seed)
        picker.addRow("class", self.klass)
        side = QVBoxLayout()
        side.addLayout(picker)
        side.addLayout(seeds)
        side.addWidget(self._controls_box)
        side.addWidget(self.error_label)
        side.addWidget(self.export_image)
        side.addWidget(self.export_grid)
        side.addWidget(self.provenance)
        side.addWidget(self.status)
        side.addStretch(1)
        side_widget = QWidget()
        side_widget.setLayout(side)
        side_widget.setFixedWidth(320)

        self.fused = ImageGrid("The fused grid appears here.", selectable=True, top=True)
        self.fused_title = QLabel("Fused")
        bold = QFont(self.fused_title.font())
        bold.setBold(True)
        self.fused_title.setFont(bold)
        self.member_grids: dict[str, ImageGrid] = {}
        self.member_titles: dict[str, QLabel] = {}
        self._members_layout = QGridLayout()
        fused_column = QVBoxLayout()
        fused_column.addWidget(self.fused_title)
        fused_column.addWidget(self.fused, 1)
        self._members_box = QWidget()
        self._members_box.setLayout(self._members_layout)
        grids = QHBoxLayout()
        grids.addLayout(fused_column, 3)
        grids.addWidget(self._members_box, 2)
        self.explore = ExplorePanel(bridge, self._fused_for_keeping)
        self.explore.sig_error.connect(self.sig_error)
        self.explore.sig_exported.connect(self.sig_exported)
        explore_area = SidewaysScroll(self.explore)  # a narrow window scrolls the panel instead of widening
        right = QVBoxLayout()
        right.addLayout(grids, 3)
        right.addWidget(explore_area, 2)
        layout = QHBoxLayout(self)
        layout.addWidget(side_widget)
        layout.addLayout(right, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFUSE_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        self.strategy.currentIndexChanged.connect(self._strategy_changed)
        self.seed.valueChanged.connect(lambda _v: self.schedule())
        self.klass.currentIndexChanged.connect(lambda _i: self.schedule())
        self.prev_seed.clicked.connect(lambda: self.seed.setValue(max(0, self.seed.value() - 1)))
        self.next_seed.clicked.connect(lambda: self.seed.setValue(self.seed.value() + 1))
        self.export_image.clicked.connect(self.export_selected)
        self.export_grid.clicked.connect(self.export_fused_grid)
        self.fused.sig_hovered.connect(lambda i: self._describe("fused", i))
        self.fused.sig_clicked.connect(lambda i: self._select("fused", i))
        bridge.sig_gallery_ready.connect(self._show)
        bridge.sig_gallery_failed.connect(self._failed)
        self._build_form()
        self._update_buttons()

    # -- the run and the strategy -------------------------------------------------------------------
    def set_run(self, run: str | None, sampling_members: list[str], scoring_members: list[str] = ()) -> None:
        self.run = run
        new_grids = list(sampling_members) != self.sampling_members
        new_form = new_grids or list(scoring_members) != self.scoring_members
        self.sampling_members, self.scoring_members = list(sampling_members), list(scoring_members)
        if new_grids:
            self._build_member_grids()
        if new_form:
            self._offer_strategies()
            self._build_form()
        self.result, self.selection = None, None
        if run is None:
            self.set_classes(())
        self.explore.set_run(run)
        self.fused.clear("The fused grid appears here.")
        self.status.setText("Train or open a run to see its samples here." if run is None else "")
        self._update_buttons()

    def set_classes(self, names: tuple[str, ...] | list[str]) -> None:
        """The classes the run's members learnt ("any class" alone, greyed out, when none did)."""
        current = self.klass.currentData() if self.klass.count() else None
        self.klass.blockSignals(True)
        self.klass.clear()
        self.klass.addItem("any class", None)
        for index, name in enumerate(names):
            self.klass.addItem(name, index)
        self.klass.setCurrentIndex(max(0, self.klass.findData(current)) if current is not None and names else 0)
        self.klass.setEnabled(bool(names))
        self.klass.setToolTip("images of one class: the members that learnt classes draw it, and the fusions "
                              "combine those members" if names else
                              "this run's members learnt no classes (set classes to on in the members page, "
                              "on a folder with subfolders)")
        self.klass.blockSignals(False)

    def label(self) -> int | None:
        """The class asked for (an index into the run's classes), None for any."""
        return self.klass.currentData()

    def _build_member_grids(self) -> None:
        for widget in [*self.member_grids.values(), *self.member_titles.values()]:
            widget.setParent(None)
            widget.deleteLater()
        self.member_grids.clear()
        self.member_titles.clear()
        for index, name in enumerate(self.sampling_members):
            title = QLabel(f"Member: {name}")
            grid = ImageGrid("", selectable=True, top=True, square=True)
            grid.setMinimumSize(150, 150)
            grid.sig_hovered.connect(lambda i, n=name: self._describe(n, i))
            grid.sig_clicked.connect(lambda i, n=name: self._select(n, i))
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 0)
            column.addWidget(title)
            column.addWidget(grid, 1)
            row, col = divmod(index, 2 if len(self.sampling_members) > 2 else 1)
            self._members_layout.addWidget(cell, row, col)
            self.member_grids[name] = grid
            self.member_titles[name] = cell
        rows = -(-len(self.sampling_members) // (2 if len(self.sampling_members) > 2 else 1))
        for row in range(rows + 1):  # the grids keep their size at the top; the space left goes below
            self._members_layout.setRowStretch(row, 1 if row == rows else 0)

    def _offer_strategies(self) -> None:
        """Strategies the run's members cannot use are greyed out, with the reason as their tooltip."""
        kinds = list(dict.fromkeys([*self.sampling_members, *self.scoring_members]))
        model = self.strategy.model()
        for index in range(self.strategy.count()):
            reason = self.specs[self.strategy.itemData(index)].unavailable(kinds) if kinds else ""
            model.item(index).setEnabled(not reason)
            self.strategy.setItemData(index, reason or None, Qt.ItemDataRole.ToolTipRole)
        if not model.item(self.strategy.currentIndex()).isEnabled():
            self.strategy.blockSignals(True)  # the caller builds the form next
            self.strategy.setCurrentIndex(max(0, self.strategy.findData("mixture")))
            self.strategy.blockSignals(False)

    def _strategy_changed(self, _index: int) -> None:
        self._build_form()
        self.schedule()

    def _build_form(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        spec = self.specs[self.strategy.currentData()]
        self.form = ParamForm(spec.params, style="slider", members=self.sampling_members,
                              scorers=self.scoring_members)
        self.form.sig_changed.connect(self.schedule)
        self._controls_layout.addWidget(self.form)
        self._controls_box.setTitle(f"{spec.title}: parameters")

    def fusion_name(self) -> str:
        return self.strategy.currentData()

    def params(self) -> dict[str, Any]:
        return self.form.values() if self.form is not None else {}

    # -- fusing ---------------------------------------------------------------------------------------
    def schedule(self) -> None:
        self._timer.start()

    def refresh(self) -> None:
        self._timer.stop()
        if self.run is None:
            return
        try:
            validate_fusion(self.fusion_name(), self.params())
        except UserError as exc:
            self._not_fused(f"Refused: {exc}")
            return
        self.error_label.hide()
        self.requested = (self.seed.value(), self.fusion_name(), repr(sorted(self.params().items())), self.label())
        self.pending = True
        self.status.setText("Fusing…")
        self.bridge.request_gallery(self.run, self.seed.value(), self.fusion_name(), self.params(), GALLERY_N,
                                    self.label())

    def _show(self, result: GalleryResult) -> None:
        self.pending = False
        self.result, self.stale = result, False
        self.fused.set_images(result.fused, captions=[f"made by {p}" for p in result.provenance])
        asked = "" if result.label is None else f" · {self.klass.itemText(self.klass.findData(result.label))}"
        self.fused_title.setText(f"Fused · {self.specs[result.fusion].title} · seed {result.seed}{asked}")
        for name, grid in self.member_grids.items():
            if name in result.members:
                grid.set_images(result.members[name], captions=[f"made by {name}"] * len(result.members[name]))
        if self.selection is not None:
            self._describe(*self.selection)
        self.status.setText(f"Checkpoint {result.checkpoint} (step {result.step:,}), seed {result.seed}, "
                            f"{result.n} images per grid.")
        self._update_buttons()

    def _failed(self, message: str) -> None:
        self.pending = False
        self._not_fused(message)

    def _not_fused(self, message: str) -> None:
        """The settings on show made nothing: say why beside them (no dialog: the next change may
        fix it), and keep the last grids but not as an export of these settings."""
        self.error_label.setText(message)
        self.error_label.show()
        self.stale = self.result is not None
        self.status.setText("The grids show the last settings that fused." if self.stale else "")
        self._update_buttons()

    # -- provenance and selection ----------------------------------------------------------------------
    def provenance_of(self, where: str, index: int) -> str:
        if self.result is None:
            return ""
        if where == "fused":
            return self.result.provenance[index]
        return where

    def _describe(self, where: str, index: int) -> None:
        if self.result is None:
            return
        source = "fused grid" if where == "fused" else f"{where}'s grid"
        self.provenance.setText(f"Image {index + 1} of the {source}: made by {self.provenance_of(where, index)}")

    def _select(self, where: str, index: int) -> None:
        self.selection = (where, index)
        for name, grid in [("fused", self.fused), *self.member_grids.items()]:
            if name != where:
                grid.selected = None
                grid.update()
        self._describe(where, index)
        self._update_buttons()
        if self.result is not None and not self.stale:
            label = f"{'fused' if where == 'fused' else where} image {index + 1}"
            self.explore.pick(self.metadata(where, index), self._images(where)[index], label,
                              self.provenance_of(where, index))

    def _fused_for_keeping(self) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any]] | None:
        """The fused grid on show, each image's recipe and the grid's (the explore panel keeps them)."""
        if self.result is None or self.stale:
            return None
        return (self.result.fused, [self.metadata("fused", i) for i in range(len(self.result.fused))],
                self.metadata("fused", None))

    def _update_buttons(self) -> None:
        shown = self.result is not None and not self.stale  # what the settings on show made
        self.export_grid.setEnabled(shown)
        self.export_image.setEnabled(shown and self.selection is not None)
        for widget in (self.prev_seed, self.next_seed, self.seed):
            widget.setEnabled(self.run is not None)
        self.explore._update_buttons()

    # -- export -----------------------------------------------------------------------------------------
    def ask_save_path(self, suggested: str) -> str:
        return QFileDialog.getSaveFileName(self, "Export PNG", suggested, "PNG images (*.png)")[0]

    def metadata(self, where: str, index: int | None) -> dict[str, Any]:
        result = self.result
        fused = where == "fused"
        meta = {"chorus": 1, "run": result.run, "run_id": result.run_id, "checkpoint": result.checkpoint,
                "member": None if fused else where, "fusion": result.fusion if fused else None,
                "params": result.params if fused else {}, "n": result.n, "seed": result.seed}
        if result.label is not None and (fused or where in result.classed):
            meta["class"] = result.label
        if index is not None:
            meta["index"] = index
            meta["provenance"] = self.provenance_of(where, index)
        return meta

    def _images(self, where: str) -> np.ndarray:
        return self.result.fused if where == "fused" else self.result.members[where]

    def export_selected(self) -> str | None:
        if self.result is None or self.selection is None or self.stale:
            return None
        where, index = self.selection
        name = self.result.fusion if where == "fused" else where
        return self._export(self._images(where)[index], self.metadata(where, index),
                            f"{name}-seed{self.result.seed}-{index + 1}.png")

    def export_fused_grid(self) -> str | None:
        if self.result is None or self.stale:
            return None
        return self._export(tile(self.result.fused), self.metadata("fused", None),
                            f"{self.result.fusion}-seed{self.result.seed}.png")

    def _export(self, image: np.ndarray, metadata: dict[str, Any], suggested: str) -> str | None:
        folder = Path(self.run or ".") / "samples"
        path = self.ask_save_path(str(folder / suggested))
        if not path:
            return None
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            written = export_png(path, image, metadata)
        except UserError as exc:
            self.sig_error.emit(str(exc))
            return None
        self.status.setText(f"Exported {written}")
        self.sig_exported.emit(str(written))
        return str(written)
