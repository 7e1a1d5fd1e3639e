"""The gallery's explore panel on a trained run: the nearest training images on click, "More like
this" with its closeness slider, an interpolation strip between two picked images, and keeping
images as a sprite sheet and a folder of single PNGs whose recipes the CLI reads."""
from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from engine.cli import main
from engine.store.images import read_png_metadata

LONG = 120_000


def gallery_of(qtbot, run):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    window.bridge.eval_judge_steps = 10
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.open_run(run)
    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None and not gallery.pending, timeout=LONG)
    return window, gallery


def click(qtbot, grid, index):
    qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cell_center(index))


def test_explore_panel_finds_neighbours_varies_interpolates_and_keeps(qtbot, tiny_run, tmp_path):
    window, gallery = gallery_of(qtbot, tiny_run)
    panel = gallery.explore
    assert not panel.more.isEnabled() and not panel.interpolate.isEnabled()

    click(qtbot, gallery.member_grids["dcgan"], 2)  # the nearest training images, on the job thread
    assert panel.nearest_pending
    qtbot.waitUntil(lambda: panel.nearest is not None and not panel.nearest_pending, timeout=LONG)
    assert len(panel.nearest.neighbours) == 3 and panel.nearest_grid.count == 4
    assert "shapes.npz #" in panel.nearest_text.text()
    assert "no likely-copy flag" in panel.nearest_text.text()  # 96 images: none held out

    panel.closeness.setValue(100)  # strength 0: sixteen copies of the image itself
    assert panel.more.isEnabled()
    panel.more.click()
    assert panel.pending  # asked, not waited for
    qtbot.waitUntil(lambda: panel.result is not None and not panel.pending, timeout=LONG)
    source = gallery.result.members["dcgan"][2]
    assert panel.result.kind == "variations" and len(panel.result.images) == 16
    assert all(np.array_equal(image, source) for image in panel.result.images)
    panel.closeness.setValue(20)
    panel.closeness.sliderReleased.emit()  # letting go of the slider makes them again, further away
    qtbot.waitUntil(lambda: not panel.pending and panel.result.recipe["explore"]["variations"]["strength"] == 0.8,
                    timeout=LONG)
    assert sum(not np.array_equal(image, source) for image in panel.result.images) >= 15

    click(qtbot, gallery.member_grids["dcgan"], 5)
    assert panel.interpolate.isEnabled()
    panel.steps.setValue(6)
    panel.interpolate.click()
    qtbot.waitUntil(lambda: panel.result is not None and panel.result.kind == "interpolation" and not panel.pending,
                    timeout=LONG)
    strip = panel.result.images
    assert len(strip) == 6 and panel.results.columns == 6
    ends = (gallery.result.members["dcgan"][2], gallery.result.members["dcgan"][5])
    assert np.abs(strip[0].astype(int) - ends[0]).max() <= 1 and np.abs(strip[-1].astype(int) - ends[1]).max() <= 1

    panel.columns.setValue(3)
    panel.spacing.setValue(1)
    panel.ask_save_path = lambda suggested, filters: str(tmp_path / "sheet.png")
    assert panel.keep("sheet") == str(tmp_path / "sheet.png")
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.size == (3 * 16 + 2, 2 * 16 + 1)
    assert read_png_metadata(tmp_path / "sheet.png")["explore"]["interpolate"]["b"]["index"] == 5
    panel.ask_save_path = lambda suggested, filters: str(tmp_path / "strip.gif")
    panel.keep("animation")
    with Image.open(tmp_path / "strip.gif") as animation:
        assert animation.n_frames == 6 + 4
    panel.ask_folder = lambda suggested: str(tmp_path / "kept")
    panel.what.setCurrentIndex(panel.what.findData("fused"))
    panel.keep("folder")
    kept = sorted((tmp_path / "kept").glob("*.png"))
    assert len(kept) == 16 and read_png_metadata(kept[3])["index"] == 3
    # a kept image's recipe is enough for the CLI: variations at strength 0 give the image back
    assert main(["sample", "--variations-of", str(kept[3]), "--strength", "0", "--n", "2",
                 "--out", f"{tmp_path / 'again'}/"]) == 0
    with Image.open(kept[3]) as original:
        expected = np.asarray(original)
    assert all(np.array_equal(np.asarray(Image.open(p)), expected) for p in (tmp_path / "again").glob("*.png"))
    window.close()


def test_a_pair_of_different_members_cannot_be_interpolated(qtbot, tiny_run):
    window, gallery = gallery_of(qtbot, tiny_run)
    panel = gallery.explore
    panel.on_click.setChecked(False)
    click(qtbot, gallery.member_grids["dcgan"], 0)
    click(qtbot, gallery.member_grids["vae"], 0)
    assert panel.more.isEnabled() and not panel.interpolate.isEnabled()
    assert "dcgan image 1 (by dcgan) and vae image 1 (by vae)" in panel.picks_label.text()
    window.close()
