"""Widgets on their own: growing series, throttled plots, controls generated from declared params."""
from __future__ import annotations

import numpy as np
import pytest


def test_growing_series_doubles_its_arrays_and_keeps_every_point():
    from gui.widgets.series import GrowingSeries

    series = GrowingSeries(capacity=4)
    for i in range(10):
        series.append(i, i * i)
    series.extend(np.arange(10, 20), np.arange(10, 20) ** 2)
    assert series.n == 20 and series.capacity == 32
    np.testing.assert_array_equal(series.x, np.arange(20))
    np.testing.assert_array_equal(series.y, np.arange(20) ** 2)
    series.clear()
    assert series.n == 0 and series.capacity == 32


def test_loss_plot_redraws_on_its_timer_not_on_every_point(qtbot):
    from gui.widgets.loss_plot import REDRAW_MS, LossPlot

    plot = LossPlot("dcgan")
    qtbot.addWidget(plot)
    for step in range(1, 5001):
        plot.append(step, {"loss_d": 1.0 / step, "loss_g": 0.5})
    assert plot.redraws == 0 and plot.points() == 5000  # appending never draws
    assert REDRAW_MS >= 33  # ≤ 30 Hz
    qtbot.waitUntil(lambda: plot.redraws == 1, timeout=2000)
    curve = plot.curves["loss_d"]
    assert len(curve.xData) == 5000
    assert curve.opts["clipToView"] and curve.opts["autoDownsample"] and curve.opts["downsampleMethod"] == "peak"
    assert all(c.opts["pen"].width() == 1 for c in plot.curves.values())
    plot.truncate(1200)
    plot.redraw()
    assert plot.points() == 1200 and len(curve.xData) == 1200
    plot.redraw()
    assert plot.redraws == 2  # nothing new: no redraw


def test_member_controls_come_from_each_members_declared_params(qtbot):
    from gui.catalog import member_specs
    from gui.widgets.member_editor import MemberEditor

    for kind, spec in member_specs().items():
        editor = MemberEditor(spec)
        qtbot.addWidget(editor)
        assert set(editor.params.fields) == {p.name for p in spec.params}
        raw = editor.raw()
        assert raw["optim"]["name"] == spec.optim["name"] and raw["batch_size"] == str(spec.batch_size)
        config = editor.validate({"source": "fashion-mnist", "size": 28, "channels": 1})
        assert config is not None, editor.error
        assert config["params"] == {p.name: p.default for p in spec.params}
        assert not editor.momentum.isVisibleTo(editor) and editor.beta1.isVisibleTo(editor)
        editor.optimizer.setCurrentText("sgd")  # SGD has momentum, no betas
        assert editor.momentum.isVisibleTo(editor) and not editor.beta1.isVisibleTo(editor)
        assert editor.validate({"source": "fashion-mnist", "size": 28, "channels": 1})["optim"]["name"] == "sgd"


def test_fusion_controls_come_from_each_strategys_declared_params(qtbot):
    from gui.catalog import fusion_specs, validate_fusion
    from gui.widgets.param_form import MemberWeights, ParamForm

    members, scorers = ["dcgan", "vae", "diffusion"], ["dcgan", "vae", "judge"]
    for name, spec in fusion_specs().items():
        form = ParamForm(spec.params, style="slider", members=members, scorers=scorers)
        qtbot.addWidget(form)
        assert set(form.fields) == {p.name for p in spec.params}
        for param in spec.params:
            if param.per_member:  # vote's voters: those that score (the judge too, not diffusion)
                field = form.fields[param.name]
                assert isinstance(field, MemberWeights)
                assert list(field.sliders) == (scorers if name == "vote" else members)
        validate_fusion(name, form.values())  # the defaults are valid as generated


def test_per_member_sliders_switch_to_custom_weights(qtbot):
    from gui.catalog import fusion_specs
    from gui.widgets.param_form import ParamForm

    form = ParamForm(fusion_specs()["mixture"].params, style="slider", members=["dcgan", "vae"])
    qtbot.addWidget(form)
    assert "weights" not in form.values()  # default: the strategy's own (equal) weights
    with qtbot.waitSignal(form.sig_changed):
        form.fields["weights"].sliders["vae"].slider.setValue(25)
    assert form.values()["weights"] == {"dcgan": 1.0, "vae": 2.5}
    form.fields["weights"].mode.setCurrentText("auto")
    assert form.values()["weights"] == "auto"


def test_image_grid_maps_the_mouse_to_cells(qtbot):
    from gui.widgets.image_grid import ImageGrid

    grid = ImageGrid(selectable=True)
    qtbot.addWidget(grid)
    grid.resize(300, 300)
    images = np.zeros((16, 8, 8, 1), dtype=np.uint8)
    grid.set_images(images, columns=4, captions=[f"made by {i}" for i in range(16)])
    for index in (0, 5, 15):
        assert grid.cell_at(grid.cell_center(index)) == index
    with qtbot.waitSignal(grid.sig_clicked) as clicked:
        from PySide6.QtCore import Qt

        qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=grid.cell_center(9))
    assert clicked.args == [9] and grid.selected == 9


@pytest.mark.parametrize("dark", [False, True])
def test_plots_follow_the_light_or_dark_scheme(qtbot, dark):
    from gui.theme import THEME
    from gui.widgets.loss_plot import LossPlot

    plot = LossPlot("vae")
    qtbot.addWidget(plot)
    previous = THEME.dark
    try:
        THEME.dark = dark
        THEME.sig_changed.emit()
        assert plot.backgroundBrush().color().name() == THEME.plot_background
        assert (THEME.plot_background == "#1e1f22") is dark
    finally:
        THEME.dark = previous
        THEME.sig_changed.emit()


def test_a_loss_plots_legend_sits_beside_the_curves_not_over_them(qtbot):
    from gui.widgets.loss_plot import LossPlot

    plot = LossPlot("dcgan")
    qtbot.addWidget(plot)
    plot.resize(600, 220)
    plot.append(1, {"loss_d": 1.0, "loss_g": 2.0})
    plot.append(2, {"loss_d": 0.9, "loss_g": 2.1})
    plot.redraw()
    plot.show()
    qtbot.waitExposed(plot)
    view = plot.getPlotItem().getViewBox().sceneBoundingRect()
    legend = plot.legend.sceneBoundingRect()
    assert [label.text for _, label in plot.legend.items] == ["loss_d", "loss_g"]
    assert legend.left() >= view.right() - 1  # right of the view box (half a pixel of rounding)
    assert legend.height() < view.height()  # as tall as its rows: each label beside its line


def test_how_the_members_train_names_the_shared_device_and_shared_paths_once(qtbot):
    from gui.pages.training_page import TrainingPage

    page = TrainingPage()
    qtbot.addWidget(page)
    page.set_notes("dcgan: fp32, fused optimizer on cuda:1\nvae: fp32, whole step as one CUDA graph on cuda:1\n"
                   "vae: step graph off since step 4, eager steps")
    assert page.paths_label.text() == ("How the members train on cuda:1:\ndcgan: fp32, fused optimizer\n"
                                       "vae: fp32, whole step as one CUDA graph\n"
                                       "vae: step graph off since step 4, eager steps")
    page.set_notes("dcgan: bf16 autocast, channels_last on cpu\nvae: bf16 autocast, channels_last on cpu")
    assert page.paths_label.text() == "How the members train on cpu:\nevery member: bf16 autocast, channels_last"
    page.set_notes("")
    assert page.paths_label.text() == ""


def test_a_slider_gives_the_value_it_shows(qtbot):
    from gui.widgets.param_form import ValueSlider

    strength = ValueSlider(0.02, 1.0, 0.4)  # refine's strength: 0.4 is not on its 100-step grid
    qtbot.addWidget(strength)
    assert strength.value() == 0.4 and strength.readout.text() == "0.40"
    strength.slider.setValue(strength.slider.maximum())
    assert strength.value() == 1.0


def test_add_member_offers_a_member_left_and_adds_it(qtbot):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    page = window.members_page
    assert list(page.editors) == ["dcgan", "vae"]
    assert page.kind.currentText() == "Diffusion (flow matching)"  # not the "every member is added" placeholder
    page.add_button.click()
    page.add_button.click()
    assert list(page.editors) == ["dcgan", "vae", "diffusion", "judge"]
    assert page.kind.currentIndex() == -1 and not page.add_button.isEnabled()  # now every member is added
    window.close()


def test_a_runs_curves_hold_its_losses_not_its_pace_reviews():
    from gui.jobs import _curves

    curves = _curves([{"member": "vae", "step": 10, "loss": 2.0},
                      {"member": "vae", "step": 250, "probe": 812.5, "pace": 0.75},
                      {"member": "vae", "step": 260, "loss": 1.5}])
    assert list(curves["vae"]) == ["loss"] and curves["vae"]["loss"][0].tolist() == [10, 260]
