"""The whole flow a user does in the studio, driven through the real window and its child trainer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import Qt

from engine.members.registry import member_class
from engine.training.pace import quota
from tests.gui.conftest import configure_tiny_run

LONG = 60_000


def metrics_steps(run: Path) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        steps.setdefault(record["member"], []).append(record["step"])
    return steps


def logged_steps(pace: float, steps: int) -> list[int]:
    """The ensemble steps a member of ``pace`` logs at (log_every 1): those in which it trained."""
    return [s for s in range(1, steps + 1) if quota(pace, s) > quota(pace, s - 1)]


def test_choose_data_train_pause_resume_fuse_export_close_and_reopen(qtbot, tiny_npz, tmp_path, monkeypatch):
    from gui.catalog import read_png_metadata
    from gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()

    # Data: a tiny .npz, shown with its count and thumbnails.
    configure_tiny_run(window, tiny_npz)
    window.data_page.refresh()
    qtbot.waitUntil(lambda: window.data_page.count.text() == "96 images", timeout=LONG)
    assert window.data_page.thumbnails.count == 48
    assert window.data_page.preview.images.shape[1:] == (16, 16, 1)

    # Train: every member's curve receives points.
    received: list[tuple[str, int]] = []
    window.bridge.sig_steps_logged.connect(lambda events: received.extend((e.member, e.step) for e in events))
    with qtbot.waitSignal(window.bridge.sig_training_started, timeout=LONG):
        window.training_page.start_button.click()
    rows = window.training_page.rows
    assert set(rows) == {"dcgan", "vae"}
    # how each member trains (its fast paths), as the trainer chose them
    paths = window.training_page.paths_label
    how = member_class("dcgan").fast_paths(torch.device("cpu")).describe()  # this CPU's auto paths (bf16 where it is native)
    assert member_class("vae").fast_paths(torch.device("cpu")).describe() == how
    # the shared device and the paths both members share are said once
    qtbot.waitUntil(lambda: paths.text() == f"How the members train on cpu:\nevery member: {how}", timeout=LONG)
    qtbot.waitUntil(lambda: all(row.plot.points() >= 5 for row in rows.values()), timeout=LONG)
    assert all(set(row.plot.series) >= {"loss_d", "loss_g"} for name, row in rows.items() if name == "dcgan")

    # Pause: every step logged before the pause has arrived, and nothing after it.
    with qtbot.waitSignal(window.bridge.sig_paused, timeout=LONG) as paused:
        window.training_page.pause_button.click()
    paused_at = paused.args[0]
    assert window.training_page.state.text() == f"Paused at step {paused_at:,}"
    assert max(step for _, step in received) == paused_at
    with qtbot.waitSignal(window.bridge.sig_resumed, timeout=LONG) as resumed:
        window.training_page.resume_button.click()
    assert resumed.args[0] == paused_at
    qtbot.waitUntil(lambda: window.training_page.step >= paused_at + 5, timeout=LONG)

    # Stop: a checkpoint is saved; no step was lost or repeated, in the window or in the log.
    with qtbot.waitSignal(window.bridge.sig_training_finished, timeout=LONG) as finished:
        window.training_page.stop_button.click()
    stopped_at, reason = finished.args
    assert reason == "stopped"
    qtbot.waitUntil(lambda: not window.bridge.training, timeout=LONG)
    run = Path(window.run_path)
    taken = {m: logged_steps(member_class(m).default_pace, stopped_at) for m in ("dcgan", "vae")}
    for member in ("dcgan", "vae"):
        assert [s for m, s in received if m == member] == taken[member]
    assert metrics_steps(run) == taken
    assert (run / "checkpoints" / f"step-{stopped_at:07d}").is_dir()

    # Gallery: the fused grid beside each member's, for one seed.
    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None and gallery.result.step == stopped_at, timeout=LONG)
    assert set(gallery.result.members) == {"dcgan", "vae"}
    assert gallery.member_grids["dcgan"].count == 16 and gallery.fused.count == 16

    # Change a weight: the fused grid changes.
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("weighted-average"))
    qtbot.waitUntil(lambda: gallery.result.fusion == "weighted-average", timeout=LONG)
    equal = gallery.result.fused.copy()
    gallery.form.fields["weights"].sliders["vae"].slider.setValue(0)
    qtbot.waitUntil(lambda: gallery.result.params.get("weights") == {"dcgan": 1.0, "vae": 0.0}, timeout=LONG)
    assert not np.array_equal(equal, gallery.result.fused)
    assert np.array_equal(gallery.result.fused, gallery.result.members["dcgan"])  # all weight on dcgan

    # Provenance: a mixture says which member made each image; clicking one shows it.
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("mixture"))
    qtbot.waitUntil(lambda: gallery.result.fusion == "mixture", timeout=LONG)
    qtbot.mouseClick(gallery.fused, Qt.MouseButton.LeftButton, pos=gallery.fused.cell_center(5))
    made_by = gallery.result.provenance[5]
    assert made_by in ("dcgan", "vae")
    assert gallery.provenance.text() == f"Image 6 of the fused grid: made by {made_by}"

    # Export the selected image; its parameters come back out of the PNG.
    target = tmp_path / "exported.png"
    monkeypatch.setattr(gallery, "ask_save_path", lambda suggested: str(target))
    assert gallery.export_selected() == str(target)
    meta = read_png_metadata(target)
    assert (meta["fusion"], meta["seed"], meta["index"], meta["provenance"]) == ("mixture", 0, 5, made_by)
    assert meta["checkpoint"] == f"step-{stopped_at:07d}" and meta["run"] == str(run)

    # Close, reopen from the recent runs: the same state.
    state = (window.data_page.raw(), window.members_page.raw(), window.training_page.step,
             {name: row.plot.points() for name, row in rows.items()})
    window.close()
    assert not window.isVisible()

    again = MainWindow(preview_data=False)
    qtbot.addWidget(again)
    recent = again.recent_actions()
    assert recent[0].text() == str(run.resolve())
    with qtbot.waitSignal(again.bridge.sig_run_opened, timeout=LONG):
        recent[0].trigger()
    assert again.data_page.raw() == state[0]
    assert again.members_page.raw() == state[1]
    assert again.training_page.step == state[2] == stopped_at
    assert {name: row.plot.points() for name, row in again.training_page.rows.items()} == state[3]
    assert not again.members_page.add_button.isEnabled()  # an existing run's members are fixed
    again.close()
