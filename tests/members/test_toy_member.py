"""A new member is one file and one registry line: a toy generator (tests/members/toy_member.py),
registered here at test time, trains, samples, fuses in vote and mixture, evaluates, passes the
self-test and gets generated controls on the members page, with no other change anywhere."""
from __future__ import annotations

import io
import math

import pytest
import torch

from engine.members.registry import MEMBERS
from tests.members.toy_member import Toy


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(MEMBERS, Toy.kind, Toy)  # the one registry line
    yield Toy


def test_a_toy_member_trains_samples_fuses_and_evaluates(toy_registered, tiny_config, tmp_path):
    from engine.evaluation import evaluate
    from engine.fusion.registry import fusion
    from engine.metrics.features import JudgeRecipe
    from engine.session import Session
    from engine.training.events import StepLogged

    session = Session.create(tiny_config(("toy", "vae"), steps=4, checkpoint_every=2), tmp_path / "run")
    events = []
    finished = session.train(4, [events.append])
    assert finished.reason == "done" and session.members["toy"].step == 4
    assert {e.member for e in events if isinstance(e, StepLogged)} == {"toy", "vae"}

    images = session.members["toy"].sample(6, torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 16, 16) and images.abs().max() <= 1
    for name, params in (("vote", {"k": "2"}), ("mixture", {"weights": "toy:1,vae:1"})):
        strategy = fusion(name)
        fused = strategy.fuse(session.members, 12, torch.Generator().manual_seed(1), **strategy.validate(params))
        assert fused.images.shape == (12, 1, 16, 16) and "toy" in fused.provenance, name

    reopened = Session.open(session.run.path)  # its checkpoint loads back
    assert torch.equal(reopened.members["toy"].sample(4, torch.Generator().manual_seed(2)),
                       session.members["toy"].sample(4, torch.Generator().manual_seed(2)))
    report = evaluate(reopened, 32, {"vote": ("vote", {"k": 2}), "mixture": ("mixture", {})}, seed=0,
                      judge_recipe=JudgeRecipe(steps=10, batch_size=32), fit_samples=32)
    assert set(report.members) == {"toy", "vae"} and set(report.fusions) == {"vote", "mixture"}
    assert math.isfinite(report.members["toy"].fd)


def test_a_toy_member_passes_the_self_test(toy_registered, tmp_path):
    from engine.self_test import run_self_test

    out = io.StringIO()
    passed, results = run_self_test("cpu", steps=2, out=out, keep=tmp_path / "self-test")
    assert passed, out.getvalue()
    train = next(r for r in results if r.name == "train")
    assert "toy" in train.detail, out.getvalue()


def test_a_toy_member_gets_generated_controls_on_the_members_page(toy_registered, qtbot):
    from gui.pages.members_page import MembersPage

    page = MembersPage(lambda: {"source": "fashion-mnist", "size": 16, "channels": 1})
    qtbot.addWidget(page)
    editor = page.add_member("toy")
    assert editor is not None and set(editor.params.fields) == {"latent", "spread"}
    config = editor.validate({"source": "fashion-mnist", "size": 16, "channels": 1})
    assert config is not None and config["params"] == {"latent": 8, "spread": 1.0}, editor.error
