"""The gallery's explore panel: "More like this" (16 neighbours of the selected image, a closeness
slider), an interpolation strip between the two images picked last, the nearest training images of
the image clicked, and keeping images (a PNG grid or strip, an animation, a sprite sheet, a folder
of single PNGs that carry their recipes). Everything the engine makes runs on the job thread
(gui/bridge.py); this panel only asks and shows."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QSlider, QSpinBox, QVBoxLayout, QWidget)

from gui.bridge import EngineBridge, ExploreResult, NearestResult
from gui.catalog import (UserError, export_animation, export_png, export_singles, export_sprite_sheet, member_specs,
                         tile)
from gui.widgets.image_grid import ImageGrid

VARIATIONS_N = 16
DEFAULT_CLOSENESS = 70   # % : strength 0.3
DEFAULT_STEPS = 8
DEFAULT_K = 3


@dataclass(frozen=True)
class Picked:
    """An image the user clicked: its recipe, pixels, a label and who made it."""
    recipe: dict[str, Any]
    image: np.ndarray
    label: str
    maker: str


def _bold(label: QLabel) -> QLabel:
    font = QFont(label.font())
    font.setBold(True)
    label.setFont(font)
    return label


class ExplorePanel(QWidget):
    sig_error = Signal(str)
    sig_exported = Signal(str)

    def __init__(self, bridge: EngineBridge, fused_grid: Callable[[], tuple[np.ndarray, list[dict], dict] | None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.bridge = bridge
        self.fused_grid = fused_grid          # the gallery's fused grid: (images, single recipes, grid recipe)
        self.specs = member_specs()
        self.run: str | None = None
        self.picks: list[Picked] = []         # the last two images clicked, newest last
        self.result: ExploreResult | None = None
        self.nearest: NearestResult | None = None
        self.pending = False
        self.nearest_pending = False
        self.varied: Picked | None = None     # the source of the variations on show

        self.more = QPushButton("More like this")
        self.more.setToolTip(f"{VARIATIONS_N} neighbours of the selected image (for a fused image: of the member "
                             "that made it)")
        self.closeness = QSlider(Qt.Orientation.Horizontal)
        self.closeness.setRange(0, 100)
        self.closeness.setValue(DEFAULT_CLOSENESS)
        self.closeness_label = QLabel()
        self.interpolate = QPushButton("Interpolate the pair")
        self.interpolate.setToolTip("a strip between the last two images you clicked (same member)")
        self.steps = QSpinBox()
        self.steps.setRange(2, 64)
        self.steps.setValue(DEFAULT_STEPS)
        self.picks_label = QLabel("Click an image; click a second one to interpolate between them.")
        self.picks_label.setWordWrap(True)
        self.on_click = QCheckBox("nearest on click")
        self.on_click.setChecked(True)
        self.on_click.setToolTip("show the training images nearest each image you click")
        self.k = QSpinBox()
        self.k.setRange(1, 8)
        self.k.setValue(DEFAULT_K)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d9534f;")
        self.error_label.hide()

        controls = QFormLayout()
        controls.addRow(self.more)
        controls.addRow(self.closeness_label)
        controls.addRow(self.closeness)
        controls.addRow(self.interpolate)
        controls.addRow("steps", self.steps)
        controls.addRow(self.picks_label)
        controls.addRow(self.on_click)
        controls.addRow("nearest k", self.k)
        controls.addRow(self.error_label)
        controls_widget = QWidget()
        controls_widget.setLayout(controls)
        controls_widget.setFixedWidth(200)

        self.title = _bold(QLabel("Explore"))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.results = ImageGrid("Variations and interpolation strips appear here.", selectable=True, hint=170)
        self.what = QComboBox()
        for text, key in (("explored images", "explored"), ("fused grid", "fused"), ("picked pair", "picked")):
            self.what.addItem(text, key)
        self.columns = QSpinBox()
        self.columns.setRange(1, 64)
        self.columns.setValue(8)
        self.spacing = QSpinBox()
        self.spacing.setRange(0, 64)
        self.spacing.setValue(0)
        self.export_grid = QPushButton("PNG grid / strip…")
        self.export_animation = QPushButton("Animation…")
        self.export_animation.setToolTip("an animated WebP or GIF of the images in order (forwards, then back)")
        self.export_sheet = QPushButton("Sprite sheet…")
        self.export_folder = QPushButton("Single PNGs…")
        self.export_folder.setToolTip("a folder with one PNG per image, each with its recipe in the PNG text")
        keep = QGridLayout()
        keep.addWidget(QLabel("keep"), 0, 0)
        keep.addWidget(self.what, 0, 1)
        keep.addWidget(QLabel("columns"), 0, 2)
        keep.addWidget(self.columns, 0, 3)
        keep.addWidget(QLabel("spacing"), 0, 4)
        keep.addWidget(self.spacing, 0, 5)
        buttons = QHBoxLayout()
        for button in (self.export_grid, self.export_animation, self.export_sheet, self.export_folder):
            buttons.addWidget(button)
        middle = QVBoxLayout()
        middle.addWidget(self.title)
        middle.addWidget(self.results, 1)
        middle.addWidget(self.status)
        middle.addLayout(keep)
        middle.addLayout(buttons)

        self.nearest_title = _bold(QLabel("Nearest training images"))
        self.nearest_title.setWordWrap(True)
        self.nearest_grid = ImageGrid("Click a generated image to see the training images nearest to it.",
                                      top=True)
        self.nearest_grid.setFixedHeight(110)  # one row: the image, then its k nearest; the list right under
        self.nearest_text = QLabel("")
        self.nearest_text.setWordWrap(True)
        self.nearest_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.nearest_text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        right = QVBoxLayout()
        right.addWidget(self.nearest_title)
        right.addWidget(self.nearest_grid)
        right.addWidget(self.nearest_text)
        right.addStretch(1)
        right_widget = QWidget()
        right_widget.setLayout(right)
        right_widget.setFixedWidth(270)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(controls_widget)
        layout.addLayout(middle, 1)
        layout.addWidget(right_widget)

        self.closeness.valueChanged.connect(self._closeness_changed)
        self.closeness.sliderReleased.connect(self._closeness_chosen)
        self.more.clicked.connect(lambda: self.more_like_this())
        self.interpolate.clicked.connect(self.interpolate_picks)
        self.results.sig_clicked.connect(self._explored_clicked)
        self.export_grid.clicked.connect(lambda: self.keep("grid"))
        self.export_animation.clicked.connect(lambda: self.keep("animation"))
        self.export_sheet.clicked.connect(lambda: self.keep("sheet"))
        self.export_folder.clicked.connect(lambda: self.keep("folder"))
        bridge.sig_explore_ready.connect(self._show)
        bridge.sig_explore_failed.connect(self._failed)
        bridge.sig_nearest_ready.connect(self._show_nearest)
        bridge.sig_nearest_failed.connect(self._nearest_failed)
        bridge.sig_nearest_progress.connect(self._nearest_progress)
        self._closeness_changed(self.closeness.value())
        self._update_buttons()

    # -- what the gallery tells it ----------------------------------------------------------------
    def set_run(self, run: str | None) -> None:
        if run != self.run:
            self.picks, self.result, self.nearest = [], None, None
            self.results.clear("Variations and interpolation strips appear here.")
            self.nearest_grid.clear("Click a generated image to see the training images nearest to it.")
            self.nearest_text.setText("")
        self.run = run
        self._update_buttons()

    def pick(self, recipe: dict[str, Any], image: np.ndarray, label: str, maker: str) -> None:
        """An image was clicked: it is the source of "More like this" and the newest of the pair."""
        picked = Picked(dict(recipe), np.ascontiguousarray(image), label, maker)
        self.picks = [p for p in self.picks if p.label != label][-1:] + [picked]
        self.picks_label.setText("Picked: " + " and ".join(f"{p.label} (by {p.maker})" for p in self.picks))
        if self.on_click.isChecked() and self.run is not None:
            self.ask_nearest(picked)
        self._update_buttons()

    @property
    def strength(self) -> float:
        return round(1.0 - self.closeness.value() / 100.0, 2)

    def _closeness_changed(self, value: int) -> None:
        self.closeness_label.setText(f"closeness {value} % (s = {self.strength:.2f})")
        self.closeness.setToolTip(f"100 %: the image itself; 0 %: unrelated images (strength {self.strength:.2f})")

    def _can(self, maker: str, what: str) -> bool:
        spec = self.specs.get(maker)
        if spec is None:  # a blend of members: the re-noising member varies it, nothing interpolates it
            return what == "vary"
        return bool(spec.can_vary) if what == "vary" else spec.can_interpolate

    def _update_buttons(self) -> None:
        ready = self.run is not None
        self.more.setEnabled(ready and bool(self.picks) and self._can(self.picks[-1].maker, "vary"))
        pair = len(self.picks) == 2 and self.picks[0].maker == self.picks[1].maker
        self.interpolate.setEnabled(ready and pair and self._can(self.picks[-1].maker, "interpolate"))
        shown = self.result is not None
        for button in (self.export_grid, self.export_animation, self.export_sheet, self.export_folder):
            button.setEnabled(shown or self.fused_grid() is not None or bool(self.picks))

    # -- asking ------------------------------------------------------------------------------------
    def more_like_this(self, source: Picked | None = None) -> None:
        source = source or (self.picks[-1] if self.picks else None)
        if self.run is None or source is None:
            return
        self.varied = source
        self._asking(f"Making {VARIATIONS_N} images like {source.label}…")
        self.bridge.request_variations(self.run, source.recipe, VARIATIONS_N, self.strength)

    def _closeness_chosen(self) -> None:
        """Letting go of the slider while variations are on show makes them again at the new closeness."""
        if self.result is not None and self.result.kind == "variations" and self.varied is not None:
            self.more_like_this(self.varied)

    def interpolate_picks(self) -> None:
        if self.run is None or len(self.picks) != 2:
            return
        a, b = self.picks
        self._asking(f"Interpolating from {a.label} to {b.label} in {self.steps.value()} steps…")
        self.bridge.request_interpolation(self.run, a.recipe, b.recipe, self.steps.value())

    def ask_nearest(self, picked: Picked) -> None:
        self.nearest_pending = True
        self.nearest_text.setText(f"Searching the training images nearest {picked.label}…")
        self.bridge.request_nearest(self.run, picked.label, picked.image, self.k.value())

    def _asking(self, text: str) -> None:
        self.pending = True
        self.error_label.hide()
        self.status.setText(text)

    # -- answers -----------------------------------------------------------------------------------
    def _show(self, result: ExploreResult) -> None:
        self.pending = False
        self.result = result
        columns = len(result.images) if result.kind == "interpolation" else None
        self.results.set_images(result.images, columns=columns,
                                captions=[f"{result.kind} {i + 1} by {result.member}" for i in range(len(result.images))])
        if result.kind == "interpolation":
            ends = result.recipe["explore"]["interpolate"]
            self.title.setText(f"Interpolation · {result.member} · {len(result.images)} steps · "
                               f"image {ends['a'].get('index', 0) + 1} → image {ends['b'].get('index', 0) + 1}")
        else:
            strength = result.recipe["explore"]["variations"]["strength"]
            self.title.setText(f"More like this · {result.member} · {len(result.images)} neighbours · "
                               f"strength {strength:.2f}")
        self.status.setText(result.note or "Click one to see its nearest training images or to explore from it.")
        self.what.setCurrentIndex(self.what.findData("explored"))
        self.columns.setValue(len(result.images) if result.kind == "interpolation" else 4)
        self._update_buttons()

    def _failed(self, message: str) -> None:
        self.pending = False
        self.status.setText("")
        self.error_label.setText(message)
        self.error_label.show()

    def _explored_clicked(self, index: int) -> None:
        if self.result is None:
            return
        self.pick(self.result.recipes[index], self.result.images[index], f"{self.result.kind} {index + 1}",
                  self.result.member)

    def _show_nearest(self, result: NearestResult) -> None:
        self.nearest_pending = False
        self.nearest = result
        images = np.stack([result.image, *[n.image for n in result.neighbours]])
        self.nearest_grid.set_images(images, columns=len(images),
                                     captions=[result.label, *[f"{n.name}: {n.distance:.3g}" for n in result.neighbours]])
        rows, width = images.shape[1] + 4, len(images) * (images.shape[2] + 2) + 2  # the tile's shape (2-px gaps)
        self.nearest_grid.setFixedHeight(max(40, min(160, self.nearest_grid.width() * rows // width + 2)))
        lines = [f"{i + 1}. {n.name} — distance {n.distance:.3g}" for i, n in enumerate(result.neighbours)]
        if result.likely_copy is None:
            lines.append(result.why_no_flag)
        elif result.likely_copy:
            lines.append(f"⚠ Likely a copy of {result.neighbours[0].name}: nearer than {result.threshold:.3g}, "
                         "closer than 99 % of held-out images come to any training image.")
        else:
            lines.append(f"Not a likely copy (the copy threshold is {result.threshold:.3g}).")
        self.nearest_title.setText(f"Nearest training images to {result.label}")
        self.nearest_text.setText("\n".join(lines))

    def _nearest_failed(self, message: str) -> None:
        self.nearest_pending = False
        self.nearest_text.setText(message)

    def _nearest_progress(self, label: str, fraction: float) -> None:
        self.nearest_text.setText(f"Preparing the evaluation's feature space ({label} {fraction:.0%})…")

    # -- keeping -------------------------------------------------------------------------------------
    def ask_save_path(self, suggested: str, filters: str) -> str:
        return QFileDialog.getSaveFileName(self, "Export", suggested, filters)[0]

    def ask_folder(self, suggested: str) -> str:
        return QFileDialog.getExistingDirectory(self, "Export single PNGs into", suggested)

    def chosen(self) -> tuple[np.ndarray, list[dict[str, Any]], dict[str, Any], str] | None:
        """(images, each one's recipe, the whole set's recipe, a file stem) of what 'keep' names."""
        what = self.what.currentData()
        if what == "explored" and self.result is not None:
            return self.result.images, self.result.recipes, self.result.recipe, self.result.kind
        if what == "fused":
            fused = self.fused_grid()
            return None if fused is None else (*fused, "fused")
        if what == "picked" and self.picks:
            recipes = [p.recipe for p in self.picks]
            return np.stack([p.image for p in self.picks]), recipes, {"chorus": 1, "sheet_of": recipes}, "picked"
        return None

    def keep(self, how: str) -> str | None:
        chosen = self.chosen()
        if chosen is None:
            self.sig_error.emit("Nothing to export yet: make variations or a strip, or pick images.")
            return None
        images, recipes, recipe, stem = chosen
        folder = Path(self.run or ".") / "samples"
        try:
            if how == "folder":
                target = self.ask_folder(str(folder))
                if not target:
                    return None
                written = export_singles(target, images, recipes, stem)
                where = f"{len(written)} PNGs in {target}"
            else:
                suffix, filters = {"grid": (".png", "PNG images (*.png)"), "sheet": ("-sheet.png", "PNG images (*.png)"),
                                   "animation": (".webp", "Animated WebP (*.webp);;Animated GIF (*.gif)")}[how]
                path = self.ask_save_path(str(folder / f"{stem}{suffix}"), filters)
                if not path:
                    return None
                if how == "animation":
                    path = path if path.lower().endswith((".webp", ".gif")) else path + ".webp"
                    written = [export_animation(path, images)]
                else:
                    path = path if path.lower().endswith(".png") else path + ".png"
                    if how == "sheet":
                        written = [export_sprite_sheet(path, images, self.columns.value(), self.spacing.value(), recipe)]
                    else:
                        columns = len(images) if recipe.get("explore", {}).get("interpolate") else None
                        written = [export_png(path, tile(images, columns), recipe)]
                where = str(written[0])
        except UserError as exc:
            self.sig_error.emit(str(exc))
            return None
        self.status.setText(f"Exported {where}")
        self.sig_exported.emit(where)
        return where
