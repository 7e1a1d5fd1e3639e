"""The gallery's class picker: a run whose members learnt classes offers them, and the grids follow."""
from __future__ import annotations

import pytest

from tests.gui.test_gallery_and_metrics import LONG, open_window


@pytest.fixture(scope="module")
def classed_run(tmp_path_factory):
    import torch

    from tests.conftest import train_labelled_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_labelled_run(tmp_path_factory.mktemp("gui-classes"), "on", steps=6).run.path
    finally:
        torch.set_num_threads(threads)


def test_the_class_picker_asks_every_grid_for_one_class(qtbot, classed_run):
    from tests.conftest import SHAPE_CLASSES

    window = open_window(qtbot, classed_run)
    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None and not gallery.pending, timeout=LONG)
    assert gallery.klass.isEnabled()
    assert [gallery.klass.itemText(i) for i in range(gallery.klass.count())] == ["any class", *SHAPE_CLASSES]
    assert gallery.result.label is None and "class" not in gallery.metadata("fused", 0)
    anything = gallery.result.members["dcgan"].copy()
    gallery.klass.setCurrentIndex(gallery.klass.findText("square"))
    qtbot.waitUntil(lambda: gallery.result.label == 2 and not gallery.pending, timeout=LONG)
    assert gallery.result.classed == ("dcgan", "vae", "diffusion")
    assert "square" in gallery.fused_title.text()
    assert gallery.metadata("fused", 3)["class"] == 2 and gallery.metadata("vae", 0)["class"] == 2
    assert (gallery.result.members["dcgan"] != anything).any()
    gallery.klass.setCurrentIndex(0)
    qtbot.waitUntil(lambda: gallery.result.label is None and not gallery.pending, timeout=LONG)
    assert (gallery.result.members["dcgan"] == anything).all()
    window.close()


def test_a_run_without_classes_greys_the_picker_out(qtbot, tmp_path):
    import torch

    from tests.conftest import train_labelled_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # labelled folders learn classes by default: this run's members were told not to
        unclassed = train_labelled_run(tmp_path, "off", steps=2).run.path
    finally:
        torch.set_num_threads(threads)
    window = open_window(qtbot, unclassed)
    gallery = window.gallery_page
    assert not gallery.klass.isEnabled() and gallery.klass.count() == 1 and gallery.label() is None
    assert "learnt no classes" in gallery.klass.toolTip()
    window.close()
