"""Gallery and metrics pages on a trained run: every strategy, evaluation with progress and cancel."""
from __future__ import annotations

import json

LONG = 120_000


def open_window(qtbot, run):
    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.bridge.sig_run_opened, timeout=LONG):
        window.open_run(run)
    return window


def test_opening_a_run_shows_its_curves_previews_and_fixed_settings(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    page = window.training_page
    assert set(page.rows) == {"dcgan", "vae", "diffusion", "judge"}
    checks = ("diversity", "sharpness")  # drawn at each preview (steps 3 and 6), beside the losses
    assert all(row.plot.points(key) == 6 for row in page.rows.values() for key in row.plot.series if key not in checks)
    assert all(page.rows[name].plot.points(key) == 2 for name in ("dcgan", "vae", "diffusion") for key in checks)
    assert all(page.rows[name].preview.count == 16 for name in ("dcgan", "vae", "diffusion"))
    assert page.step == 6 and page.state.text() == "Opened at step 6"
    assert not window.data_page.size.isEnabled() and not page.seed.isEnabled()
    assert window.windowTitle() == "Chorus — tiny-run"
    window.close()


def test_every_strategy_fuses_in_the_background_or_says_why(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    gallery = window.gallery_page
    failures: list[str] = []
    gallery.bridge.sig_gallery_failed.connect(failures.append)
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None, timeout=LONG)
    assert set(gallery.member_grids) == {"dcgan", "vae", "diffusion"}  # the judge makes no images
    for index in range(gallery.strategy.count()):
        name = gallery.strategy.itemData(index)
        failures.clear()
        gallery.strategy.setCurrentIndex(index)
        qtbot.waitUntil(lambda: failures or (gallery.result.fusion == name and not gallery.pending), timeout=LONG)
        assert not failures, f"{name}: {failures}"
        assert gallery.fused.count == 16 and len(gallery.result.provenance) == 16
    window.close()


def test_seed_buttons_change_the_grids_and_keep_them_reproducible(qtbot, tiny_run):
    import numpy as np

    window = open_window(qtbot, tiny_run)
    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None and gallery.result.seed == 0, timeout=LONG)
    first = gallery.result.members["vae"].copy()
    gallery.next_seed.click()
    qtbot.waitUntil(lambda: gallery.result.seed == 1, timeout=LONG)
    assert not np.array_equal(first, gallery.result.members["vae"])
    gallery.prev_seed.click()
    qtbot.waitUntil(lambda: gallery.result.seed == 0, timeout=LONG)
    assert np.array_equal(first, gallery.result.members["vae"])
    window.close()


def test_evaluation_fills_the_table_the_chart_and_the_history(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    window.bridge.eval_judge_steps = 30
    metrics = window.metrics_page
    metrics.n.setValue(40)
    metrics.fusions = {"average": {}, "mixture": {}}
    progress: list[float] = []
    window.bridge.sig_eval_progress.connect(lambda label, fraction: progress.append(fraction))
    with qtbot.waitSignal(window.bridge.sig_eval_ready, timeout=LONG):
        metrics.evaluate_button.click()
        assert metrics.running and metrics.cancel_button.isEnabled()
    assert progress and progress[-1] == 1.0
    names = [metrics.table.item(r, 0).text() for r in range(metrics.table.rowCount())]
    assert names == ["dcgan", "vae", "diffusion", "average (fusion)", "mixture (fusion)"]
    assert all(metrics.table.item(r, 1).text() != "—" for r in range(len(names)))
    assert len(metrics.bars.getPlotItem().items) == 1 and metrics.history[-1]["step"] == 6
    saved = tiny_run / "eval" / "step-0000006-n40.json"
    assert json.loads(saved.read_text())["members"]["vae"]["fd"] >= 0
    window.close()

    again = open_window(qtbot, tiny_run)  # the history comes back from the run folder
    assert again.metrics_page.history[-1]["n"] == 40 and again.metrics_page.table.rowCount() == 5
    again.close()


def test_evaluation_can_be_cancelled(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    window.bridge.eval_judge_steps = 30
    metrics = window.metrics_page
    metrics.n.setValue(40)
    with qtbot.waitSignal(window.bridge.sig_eval_cancelled, timeout=LONG):
        metrics.start()
        metrics.cancel_button.click()
    assert not metrics.running and metrics.evaluate_button.isEnabled()
    assert metrics.progress_label.text() == "Evaluation cancelled; nothing was saved."
    assert not (tiny_run / "eval").exists()
    window.close()


def test_a_checkpoint_saved_during_an_evaluation_is_measured_when_it_ends(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    window.bridge.eval_judge_steps = 30
    metrics = window.metrics_page
    metrics.n.setValue(40)
    metrics.fusions = {"average": {}}
    metrics.auto.setChecked(True)
    ready = []
    window.bridge.sig_eval_ready.connect(ready.append)
    metrics.start()
    metrics.checkpoint_saved(6)  # arrives while the first evaluation runs
    qtbot.waitUntil(lambda: len(ready) == 2 and not metrics.running, timeout=LONG)
    metrics.auto.setChecked(False)
    metrics.start()
    metrics.checkpoint_saved(6)  # not asked to follow checkpoints: only the one started
    qtbot.waitUntil(lambda: len(ready) == 3 and not metrics.running, timeout=LONG)
    assert not metrics._checkpoint_waiting
    window.close()


def test_fd_history_draws_only_the_evaluations_at_the_n_on_show(qtbot, tiny_run):
    window = open_window(qtbot, tiny_run)
    metrics = window.metrics_page

    def report(step, n, fd):
        return {"step": step, "n": n, "members": {"vae": {"fd": fd}}, "fusions": {"average": {"fd": fd + 1}}}

    metrics.set_run(str(tiny_run), [report(2, 10, 900.0), report(4, 100, 300.0), report(6, 100, 250.0)])
    curves = metrics.fd_history.getPlotItem().listDataItems()
    assert [list(curve.getData()[0]) for curve in curves] == [[4, 6], [4, 6]]  # FD at n = 10 is not comparable
    assert metrics.history_title.text().endswith("n = 100; 1 at other n not shown)")
    assert [label.text for _, label in metrics._history_legend.items] == ["vae", "average"]
    window.close()


def test_the_gallery_offers_only_what_the_runs_members_can_do(qtbot):
    from PySide6.QtCore import Qt

    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    qtbot.addWidget(window)
    gallery = window.gallery_page
    gallery.set_run(None, ["dcgan"], ["dcgan", "judge"])  # no vae, no diffusion

    def offered(name):
        index = gallery.strategy.findData(name)
        return gallery.strategy.model().item(index).isEnabled(), gallery.strategy.itemData(index, Qt.ItemDataRole.ToolTipRole)

    assert offered("refine") == (False, "needs a diffusion member in the run")
    assert offered("vote") == (True, None) and offered("mixture") == (True, None)
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("soup"))
    member = gallery.form.fields["member"]
    assert [member.itemText(i) for i in range(member.count())] == ["dcgan"]  # not the absent vae (its default)
    assert gallery.params()["member"] == "dcgan"

    gallery.strategy.setCurrentIndex(gallery.strategy.findData("vote"))
    gallery.set_run(None, ["diffusion"], [])  # nobody can vote: vote greyed out, the gallery moves off it
    assert offered("vote") == (False, "needs a member that scores images (dcgan, vae or judge)")
    assert gallery.fusion_name() == "mixture" and set(gallery.form.fields) == {"weights"}
    assert offered("refine") == (False, "needs a member besides the diffusion one that makes images (dcgan or vae)")
    gallery.set_run(None, ["vae", "diffusion"], ["vae"])
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("refine"))
    source = gallery.form.fields["source"]
    assert offered("refine") == (True, None)
    assert [source.itemText(i) for i in range(source.count())] == ["auto", "vae"]
    window.close()


def test_refused_settings_are_said_beside_them_and_the_old_grids_are_not_exported(qtbot, tiny_run, monkeypatch):
    window = open_window(qtbot, tiny_run)
    gallery = window.gallery_page
    window.tabs.setCurrentWidget(gallery)
    qtbot.waitUntil(lambda: gallery.result is not None and not gallery.pending, timeout=LONG)
    assert gallery.export_grid.isEnabled()
    messages = []
    monkeypatch.setattr(window, "show_message", lambda title, text: messages.append(text))
    gallery.strategy.setCurrentIndex(gallery.strategy.findData("weighted-average"))
    weights = gallery.form.fields["weights"]
    for slider in weights.sliders.values():
        slider.set_value(0.0)
    weights._slid()
    gallery.refresh()  # the engine refuses it while fusing
    qtbot.waitUntil(lambda: "must not all be zero" in gallery.error_label.text() and not gallery.pending,
                    timeout=LONG)
    assert gallery.error_label.isVisibleTo(gallery)
    assert not gallery.export_grid.isEnabled() and gallery.export_fused_grid() is None
    assert gallery.status.text() == "The grids show the last settings that fused." and messages == []
    weights.sliders["vae"].set_value(1.0)
    weights._slid()
    gallery.refresh()
    qtbot.waitUntil(lambda: gallery.result.fusion == "weighted-average" and not gallery.pending, timeout=LONG)
    assert gallery.export_grid.isEnabled() and not gallery.error_label.isVisibleTo(gallery)
    window.close()
