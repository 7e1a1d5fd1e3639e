"""Screenshots of every page at 1280×800: ``python -m gui.screenshots docs/screenshots [--quick]``.

Drives the real window offscreen the way a user would: the bundled Fashion-MNIST, four small
members, a short CPU training run (captured while it trains), the gallery with custom mixture
weights and an image selected, and an evaluation. Settings, runs and caches go to a temporary
folder, never the user's.

``--folder FOLDER --run RUN --name emoji``: the data page reading an artist's folder at the
defaults ("auto"), and the gallery of a run trained on it (``data-emoji.png``, ``gallery-emoji.png``).

``--strategy NAME --run RUN``: the gallery of a trained run with one strategy chosen, its generated
controls at their defaults (``gallery-strategy-NAME.png``).

``--strategy NAME --run RUN --class CLASS``: the same with one class asked for in the gallery's class
picker, its list open (``gallery-class-CLASS.png``; a run whose members learnt classes).

``--explore RUN``: the gallery's explore panel on a trained run: "More like this" of a fused image
(``explore-more.png``), an interpolation strip between two images of one member
(``explore-interpolation.png``) and the nearest training images of a clicked variation
(``explore-nearest.png``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

SIZE = (1280, 800)
MEMBERS = {
    "dcgan": {"batch_size": 64, "params": {"width": 16, "latent": 32}},
    "vae": {"batch_size": 64, "params": {"width": 16, "latent": 16}},
    "diffusion": {"batch_size": 64, "params": {"width": 16, "sample_steps": 10}},
    "judge": {"batch_size": 64},
}


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(lambda: (predicate() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    if not predicate():
        loop.exec()
    timer.stop()
    if not predicate():
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def settle(ms: int = 400) -> None:
    """Let timers (plot redraws, debounced previews) fire before a grab."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def grab(window, page, out: Path, name: str) -> Path:
    window.tabs.setCurrentWidget(page)
    settle()
    path = out / f"{name}.png"
    if not window.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path}", file=sys.stderr)
    return path


def studio(preview_data: bool = True):
    """The application and its window at SIZE, shown, with settings in the throw-away folder."""
    from PySide6.QtCore import QSettings

    from gui.app import make_app

    app = make_app([sys.argv[0]])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.environ["CHORUS_USER_DATA"])
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=preview_data)
    window.resize(*SIZE)
    window.show()
    return app, window


def open_gallery(window, run: Path, seed: int = 3):
    """Open ``run`` and wait for its gallery at ``seed``."""
    window.open_run(run)
    gallery = window.gallery_page
    wait_until(lambda: gallery.run is not None, 300, "the run to open")
    window.tabs.setCurrentWidget(gallery)
    gallery.seed.setValue(seed)
    wait_until(lambda: gallery.result is not None and gallery.result.seed == seed and not gallery.pending
               and not gallery._timer.isActive(), 600, "the gallery")
    return gallery


def take(out: Path, quick: bool) -> list[Path]:
    app, window = studio()  # noqa: F841 - the app lives while the window does
    shots = []
    wait_until(lambda: window.data_page.preview is not None, 120, "the data preview")
    shots.append(grab(window, window.data_page, out, "data"))

    page = window.members_page
    page.clear()
    for kind, config in MEMBERS.items():
        page.add_member(kind, config)
    shots.append(grab(window, page, out, "members"))

    training = window.training_page
    steps = 120 if quick else 400
    training.set_train_config({"steps": steps, "seed": 0, "device": "cpu", "log_every": 5,
                               "preview_every": steps // 4, "checkpoint_every": steps // 4})
    metrics = window.metrics_page
    window.bridge.eval_judge_steps = 200 if quick else 600
    metrics.n.setValue(300 if quick else 1000)
    metrics.auto.setChecked(True)  # FD over checkpoints while it trains
    window.tabs.setCurrentWidget(training)
    window.start_training()
    if not window.bridge.training:
        raise RuntimeError(f"training did not start: {window.last_message}")
    wait_until(lambda: training.step >= steps * 0.8 and all(
        row.preview.count for row in training.rows.values() if row.name != "judge"), 1800, "training progress")
    shots.append(grab(window, training, out, "training"))
    wait_until(lambda: not window.bridge.training and window.gallery_page.run is not None, 600, "training to end")

    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("mixture"))
    weights = gallery.form.fields["weights"]
    for name, value in (("dcgan", 3.0), ("vae", 1.0), ("diffusion", 2.0)):
        if name in weights.sliders:
            weights.sliders[name].set_value(value)
    weights._slid()
    gallery.seed.setValue(7)
    wait_until(lambda: gallery.result is not None and gallery.result.seed == 7 and not gallery.pending
               and not gallery._timer.isActive() and gallery.requested[2] == repr(sorted(gallery.params().items())),
               300, "the gallery with these weights")
    gallery._select("fused", 5)
    gallery.fused.selected = 5
    shots.append(grab(window, gallery, out, "gallery"))

    window.tabs.setCurrentWidget(metrics)
    wait_until(lambda: not metrics.running, 1800, "the evaluation of a checkpoint")
    if not metrics.report or metrics.report.get("step") != steps:
        metrics.start()
        wait_until(lambda: not metrics.running, 1800, "the evaluation of the last checkpoint")
    shots.append(grab(window, metrics, out, "metrics"))
    window.close()
    return shots


def take_folder(out: Path, folder: Path, run: Path, name: str) -> list[Path]:
    app, window = studio()  # noqa: F841 - the app lives while the window does
    data = window.data_page
    wait_until(lambda: data.preview is not None, 120, "the bundled data's preview")
    data.set_source(str(folder))
    wait_until(lambda: data.preview is not None and data.preview.config.get("source") == str(folder.absolute()),
               600, "the folder's preview")
    shots = [grab(window, data, out, f"data-{name}")]

    gallery = open_gallery(window, run)
    gallery._select("fused", 2)
    gallery.fused.selected = 2
    shots.append(grab(window, gallery, out, f"gallery-{name}"))
    window.close()
    return shots


def take_strategy(out: Path, run: Path, strategy: str, klass: str | None = None) -> list[Path]:
    app, window = studio(preview_data=False)  # noqa: F841 - the app lives while the window does
    gallery = open_gallery(window, run)
    gallery.strategy.setCurrentIndex(gallery.strategy.findData(strategy))
    label = None
    if klass is not None:
        index = gallery.klass.findText(klass)
        if index < 0:
            raise SystemExit(f"the run offers no class {klass!r} (it offers: "
                             f"{', '.join(gallery.klass.itemText(i) for i in range(gallery.klass.count()))})")
        gallery.klass.setCurrentIndex(index)
        label = gallery.klass.currentData()
    wait_until(lambda: gallery.result is not None and not gallery.pending and not gallery._timer.isActive()
               and gallery.requested[2] == repr(sorted(gallery.params().items())) and gallery.result.label == label,
               1800, f"the gallery with {strategy}")
    if klass is None:
        shots = [grab(window, gallery, out, f"gallery-strategy-{strategy}")]
    else:
        gallery.klass.showPopup()  # the picker's list open over the grids, as a user sees it
        settle()
        shots = [grab_with_popup(window, gallery.klass, out, f"gallery-class-{klass.lower()}")]
        gallery.klass.hidePopup()
    window.close()
    return shots


def grab_with_popup(window, combo, out: Path, name: str) -> Path:
    """The window with a combo box's open list painted where it shows (a popup is its own window)."""
    from PySide6.QtGui import QPainter

    shot = window.grab()
    view = combo.view().window()
    painter = QPainter(shot)
    painter.drawPixmap(window.mapFromGlobal(view.mapToGlobal(view.rect().topLeft())), view.grab())
    painter.end()
    path = out / f"{name}.png"
    if not shot.save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path}", file=sys.stderr)
    return path


def take_explore(out: Path, run: Path, judge_steps: int = 200) -> list[Path]:
    app, window = studio(preview_data=False)  # noqa: F841 - the app lives while the window does
    window.bridge.eval_judge_steps = judge_steps
    gallery = open_gallery(window, run)
    panel = gallery.explore
    made_by = [i for i, who in enumerate(gallery.result.provenance) if who == "dcgan"]
    first, second = (made_by + [0, 1])[:2]

    def click(grid, index):
        grid.selected = index
        grid.sig_clicked.emit(index)

    shots = []
    click(gallery.fused, first)
    panel.closeness.setValue(75)
    panel.more.click()
    wait_until(lambda: panel.result is not None and not panel.pending and panel.nearest is not None
               and not panel.nearest_pending, 1800, "variations and the nearest training images")
    shots.append(grab(window, gallery, out, "explore-more"))

    click(gallery.fused, second)
    panel.steps.setValue(10)
    panel.interpolate.click()
    wait_until(lambda: panel.result.kind == "interpolation" and not panel.pending and not panel.nearest_pending,
               600, "the interpolation strip")
    shots.append(grab(window, gallery, out, "explore-interpolation"))

    click(panel.results, 4)
    wait_until(lambda: not panel.nearest_pending and panel.nearest.label == "interpolation 5", 600,
               "the nearest training images of a strip's image")
    shots.append(grab(window, gallery, out, "explore-nearest"))
    window.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gui.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/screenshots"))
    parser.add_argument("--quick", action="store_true", help="a shorter run (pictures of less trained members)")
    parser.add_argument("--folder", type=Path, help="an artist's folder for the data page (with --run)")
    parser.add_argument("--run", type=Path, help="a run trained on --folder, for the gallery")
    parser.add_argument("--name", default="folder", help="suffix of the folder's screenshots")
    parser.add_argument("--explore", type=Path, metavar="RUN", help="the gallery's explore panel on a trained run")
    parser.add_argument("--strategy", help="the gallery of --run with this fusion strategy chosen")
    parser.add_argument("--class", dest="klass", help="with --strategy: this class asked for in the class picker")
    args = parser.parse_args(argv)
    if args.strategy is not None and args.run is None:
        parser.error("--strategy needs --run")
    if args.strategy is None and (args.folder is None) != (args.run is None):
        parser.error("--folder and --run go together")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="chorus-screenshots-") as temp:
        os.environ["CHORUS_USER_DATA"] = temp
        if args.strategy is not None:  # the run's evaluation judge stays the user's
            take_strategy(args.out, args.run.absolute(), args.strategy, args.klass)
            return 0
        if args.folder is not None:  # the run's evaluation judge and the folder's cache stay the user's
            take_folder(args.out, args.folder, args.run.absolute(), args.name)
            return 0
        os.environ["XDG_CACHE_HOME"] = str(Path(temp) / "cache")
        if args.explore is not None:
            take_explore(args.out, args.explore.absolute())
            return 0
        take(args.out, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
