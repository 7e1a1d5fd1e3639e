"""evaluate(): all six metrics for every member and fusion; the CLI prints it as JSON."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.evaluation import EvaluationCancelled, evaluate
from engine.metrics.features import JudgeRecipe
from engine.session import Session

METRICS = ("fd", "kid", "precision", "recall", "density", "coverage")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    from tests.conftest import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("evaluation")).run.path


def test_evaluate_reports_every_member_and_fusion(run_path):
    session = Session.open(run_path)
    seen = []
    report = evaluate(session, 40, judge_recipe=JudgeRecipe(steps=30), fit_samples=40,
                      progress=lambda label, fraction: seen.append((label, fraction)))
    assert set(report.members) == {"dcgan", "vae", "diffusion"}
    assert set(report.fusions) == {"average", "weighted-average", "mixture", "vote", "vote-ratio", "vote-fitted", "vote-even", "vote-committee",
                                "vote-judge", "vote-gan-judge",
                                "refine", "guide", "guide-judge", "soup"}
    for row in [*report.members.values(), *report.fusions.values()]:
        values = [getattr(row, m) for m in METRICS]
        assert all(math.isfinite(v) for v in values) and row.fd >= 0 and 0 <= row.precision <= 1
        assert row.fd_ratio == pytest.approx(row.fd / report.floor_fd)
    assert report.floor_fd > 0 and seen[-1] == ("done", 1.0)
    weights = report.params["weighted-average"]["weights"]
    assert weights and min(weights, key=weights.get) == max(report.members, key=lambda m: report.members[m].fd)


def test_evaluate_can_be_cancelled(run_path):
    session = Session.open(run_path)
    with pytest.raises(EvaluationCancelled):
        evaluate(session, 40, judge_recipe=JudgeRecipe(steps=30), should_stop=lambda: True)


def test_cli_evaluate_prints_one_json_object_and_its_progress_on_stderr(run_path, capsys):
    assert main(["evaluate", str(run_path), "--n", "30", "--json", "--judge-steps", "20",
                 "--fusions", "average,vote,mixture"]) == 0
    printed = capsys.readouterr()
    document = json.loads(printed.out)  # stdout is the report alone
    progress = printed.err.splitlines()
    assert any(line.split()[-1] == "dcgan" for line in progress) and progress[-1].split() == ["100%", "done"]
    saved = list((run_path / "eval").glob("*.json"))
    kept = json.loads(saved[0].read_text()) if len(saved) == 1 else {}
    assert (kept.get("n"), kept.get("step"), set(kept.get("fusions", ()))) == \
        (document["n"], document["step"], set(document["fusions"]))  # saved whole, no temp file left
    assert not list((run_path / "eval").glob("*.tmp"))
    assert set(document) >= {"members", "fusions", "floor"}
    assert set(document["fusions"]) == {"average", "vote", "mixture"}
    for table in (document["members"], document["fusions"]):
        for row in table.values():
            assert all(isinstance(row[m], float) for m in METRICS)
    assert document["floor"]["fd"] > 0


def test_inception_without_weights_is_a_clear_error(run_path, capsys):
    assert main(["evaluate", str(run_path), "--n", "30", "--features", "inception"]) == 2
    assert "--inception-weights" in capsys.readouterr().err
    assert main(["evaluate", str(run_path), "--n", "30", "--features", "inception",
                 "--inception-weights", str(run_path / "nope.pth")]) == 2
    assert "never downloads" in capsys.readouterr().err


def test_cached_reference_features_belong_to_the_judge_that_made_them(tiny_config, tmp_path):
    """Two judge recipes on the same data: each evaluator gets its own judge's features, cache or not."""
    import numpy as np
    import torch

    from engine.data.sources import load_data
    from engine.evaluation import Evaluator
    from engine.metrics.features import JudgeRecipe

    config = tiny_config()
    data = load_data(config.data)
    cpu = torch.device("cpu")
    short = Evaluator(data, config.data, cpu, judge_recipe=JudgeRecipe(steps=5, batch_size=16)).reference
    longer = Evaluator(data, config.data, cpu, judge_recipe=JudgeRecipe(steps=30, batch_size=16)).reference
    again = Evaluator(data, config.data, cpu, judge_recipe=JudgeRecipe(steps=5, batch_size=16)).reference
    assert not np.allclose(short, longer)
    assert np.array_equal(short, again)


def test_prdc_compares_as_many_reference_images_as_samples(run_path):
    import numpy as np

    from engine.evaluation import Evaluator

    session = Session.open(run_path)
    evaluator = Evaluator(session.data, session.config.data, session.device, judge_recipe=JudgeRecipe(steps=30))
    reference = evaluator.reference
    n = len(reference) // 3
    picked = evaluator.prdc_reference(n)
    assert picked.shape == (n, reference.shape[1])
    assert np.array_equal(picked, evaluator.prdc_reference(n))  # the same draw for every row
    assert all((reference == row).all(axis=1).any() for row in picked)  # rows of the reference
    assert evaluator.prdc_reference(len(reference) + 5) is reference  # more samples than reference: all of it


def test_random_features_are_a_fixed_untrained_second_space(run_path):
    from engine.metrics.features import RandomFeatures

    images = torch.rand(6, 4, 16, 16) * 2 - 1
    first, again = RandomFeatures(torch.device("cpu")), RandomFeatures(torch.device("cpu"))
    assert np.array_equal(first(images), again(images)) and first(images).shape == (6, 512)
    assert not np.array_equal(first(images), RandomFeatures(torch.device("cpu"), seed=1)(images))
    grey = images[:, :1]  # grey is seen as grey colour, alpha over white
    assert np.allclose(first(grey), first(grey.expand(-1, 3, -1, -1)))
    opaque = torch.cat([images[:, :3], torch.ones_like(images[:, :1])], 1)
    assert np.allclose(first(opaque), first(images[:, :3]))
    report = evaluate(Session.open(run_path), 40, fusions={}, features="random")
    assert report.features.startswith("random-2020") and all(math.isfinite(row.fd) for row in report.members.values())


def test_fusions_pick_in_a_space_no_evaluation_measures_in(run_path, monkeypatch):
    """The vote and the mixture fit in the picking space (engine/metrics/picking.py), not in the
    features that grade them: judge, random or Inception."""
    from engine.evaluation import lazy_context
    from engine.fusion.vote import Vote
    from engine.metrics.features import RandomFeatures
    from engine.metrics.picking import PickingSpace

    session = Session.open(run_path)
    seen = []
    original = Vote.fuse
    monkeypatch.setattr(Vote, "fuse", lambda self, *a, context=None, **kw:
                        seen.append(context) or original(self, *a, context=context, **kw))
    for space in ("judge", "random"):
        report = evaluate(session, 40, fusions={"vote": {"k": 2}}, features=space,
                          judge_recipe=JudgeRecipe(steps=30), fit_samples=40)
        picked_in = seen[-1].features.name
        assert picked_in.startswith("random-2026") and picked_in != report.features and "vote" in report.fusions
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    picking = PickingSpace(session.data, session.device)
    assert not np.allclose(picking.extract(images), RandomFeatures(torch.device("cpu"))(images))
    lazy = lazy_context(session)
    assert np.array_equal(lazy.features(images), picking.extract(images))
    assert np.array_equal(lazy.fit_reference, picking.fit_reference())
    assert len(picking.fit_reference()) == len(picking.fit_picks()) == min(len(session.data.images), 5000)
