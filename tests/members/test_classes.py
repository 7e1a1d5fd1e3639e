"""Class conditioning (engine/members/classes.py): members that learn classes sample the class asked
for, "any class" is read from each latent, and every path that samples takes the class."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.errors import UserError
from engine.members.classes import ClassCounts, settle_classes
from engine.members.registry import MEMBERS, run_config
from engine.session import Session
from engine.store.images import read_png_metadata
from tests.conftest import SHAPE_CLASSES as SHAPES
from tests.conftest import shapes_dataset, tiny_config_dict, train_labelled_run

CONDITIONAL = ("dcgan", "vae", "diffusion")


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory) -> Session:
    return train_labelled_run(tmp_path_factory.mktemp("classes-on"), "on")


@pytest.fixture(scope="module")
def unconditioned(tmp_path_factory) -> Session:
    return train_labelled_run(tmp_path_factory.mktemp("classes-off"), "off", steps=4)


def test_every_generator_declares_whether_it_can_learn_classes():
    assert {kind for kind, cls in MEMBERS.items() if cls.can_condition} == set(CONDITIONAL)


def test_auto_settles_to_the_new_run_default_and_off_without_labels():
    from engine.members.classes import NEW_RUN_CLASSES

    assert settle_classes({"classes": "auto"}, 10)["classes"] == NEW_RUN_CLASSES
    assert settle_classes({"classes": "auto"}, 0)["classes"] == "off"
    assert settle_classes({"classes": "on"}, 10)["classes"] == "on"
    with pytest.raises(UserError, match="classes = on needs labelled images"):
        settle_classes({"classes": "on"}, 0)


def test_the_run_keeps_its_class_names_and_counts_each_class(conditioned):
    assert conditioned.run.class_names == SHAPES
    again = Session.open(conditioned.run.path, with_data=False)
    assert again.run.class_names == SHAPES and again.run.class_index("SQUARE") == 2 and again.run.class_index("1") == 1
    with pytest.raises(UserError, match="has no class 'circle'.*bar-across, bar-down, square"):
        again.run.class_index("circle")
    for kind in CONDITIONAL:
        member = conditioned.member(kind)
        assert member.conditioned
        counts = member.class_counts.counts
        assert counts.sum() == member.step * member.config.batch_size and (counts > 0).all()


@pytest.mark.parametrize("kind", CONDITIONAL)
def test_a_class_asked_for_gives_the_same_pixels_for_the_same_seed_and_changes_them(conditioned, kind):
    member = conditioned.member(kind)
    seeded = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    first, again = member.sample(6, seeded(), label=0), member.sample(6, seeded(), label=0)
    assert torch.equal(first, again) and first.shape == (6, 1, 16, 16)
    assert not torch.equal(first, member.sample(6, seeded(), label=2))
    reopened = Session.open(conditioned.run.path, with_data=False).member(kind)
    assert torch.equal(reopened.sample(6, seeded(), label=0), first)


@pytest.mark.parametrize("kind", CONDITIONAL)
def test_any_class_is_read_from_each_latent(conditioned, kind):
    member = conditioned.member(kind)
    latents = member.latents(70, torch.Generator().manual_seed(2))
    labels = member.labels_for(latents, None)
    assert torch.equal(member.labels_for(latents[:65], None), labels[:65])  # image j's class depends on j alone
    anything = member.from_latents(latents, None)
    original = member.config  # an asked class is guided (the diffusion's class_guidance), any is not
    member.config = dataclasses.replace(original, params={**original.params, "class_guidance": 1.0})
    try:
        for k in range(3):  # a latent decoded as its own class is the image "any" gives (to rounding: other batch)
            own = (labels == k).nonzero().flatten()[:2]
            assert torch.allclose(member.from_latents(latents[own], k), anything[own], atol=1e-5)
    finally:
        member.config = original


def test_any_class_follows_the_training_proportions():
    counts = ClassCounts(3)
    counts.observe(torch.tensor([0] * 60 + [1] * 30 + [2] * 10))
    labels = counts.any_labels(torch.randn(20_000, 64, generator=torch.Generator().manual_seed(0)))
    shares = torch.bincount(labels, minlength=3).double() / len(labels)
    assert torch.allclose(shares, torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64), atol=0.015)


def test_a_conditional_discriminator_sees_the_spread_within_each_class():
    from engine.members.nets import MinibatchStd

    mbstd = MinibatchStd(classes=3)
    x = torch.randn(12, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 1, 2, 1, 0])
    spread = mbstd(x, labels)[:, -1]
    for i, label in enumerate(labels):
        same = x[labels == label]
        expected = (same.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(spread[i], torch.full_like(spread[i], expected.item()), atol=1e-6)
    # one image per class, repeated: no spread within a class, however different the classes are
    collapsed = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(1))[labels] * 10
    assert mbstd(collapsed, labels)[:, -1].max() < 1e-3 < mbstd(collapsed)[:, -1].min()


def test_a_member_without_classes_refuses_one(unconditioned):
    member = unconditioned.member("dcgan")
    assert not member.conditioned
    with pytest.raises(UserError, match="trained without classes"):
        member.sample(2, torch.Generator().manual_seed(0), label=1)
    from engine.fusion.registry import fusion

    with pytest.raises(UserError, match="no member of this run learnt classes"):
        fusion("mixture").fuse(unconditioned.members, 4, torch.Generator().manual_seed(0), label=1,
                               **fusion("mixture").validate({}))


def test_a_class_out_of_range_is_refused(conditioned):
    with pytest.raises(UserError, match="not one of this run's 3 classes"):
        conditioned.member("vae").sample(2, torch.Generator().manual_seed(0), label=3)


def test_scores_and_critics_judge_an_image_as_one_of_the_asked_class(conditioned):
    images = conditioned.member("diffusion").sample(5, torch.Generator().manual_seed(1), label=1)
    judge = conditioned.member("judge")
    log_probs = torch.log_softmax(judge.net(images), 1)
    assert torch.allclose(judge.critic(images, label=2), log_probs[:, 2])
    for kind in ("dcgan", "vae"):
        member = conditioned.member(kind)
        per_class = torch.stack([member.score(images, k) for k in range(3)], dim=1)
        shares = member.class_counts.shares().log()
        assert torch.allclose(member.score(images), torch.logsumexp(per_class + shares, dim=1), atol=1e-4)
    critic = conditioned.member("dcgan").critic(images.requires_grad_(True), label=0)
    (grad,) = torch.autograd.grad(critic.sum(), images)
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["average", "mixture", "vote", "refine", "guide", "soup"])
def test_every_fusion_takes_the_class_and_repeats_itself(conditioned, name):
    from engine.fusion.base import FusionContext
    from engine.fusion.registry import fusion

    strategy = fusion(name)
    params = strategy.validate({"member": "dcgan", "checkpoints": 2} if name == "soup" else
                               {"weights": "dcgan:1,vae:1,diffusion:1"} if name == "mixture" else dict(strategy.quick_params))
    context = FusionContext(checkpoints=[conditioned.checkpoint, conditioned.checkpoint])
    made = [strategy.fuse(conditioned.members, 6, torch.Generator().manual_seed(3), context=context, label=2, **params)
            for _ in range(2)]
    assert torch.equal(made[0].images, made[1].images) and made[0].images.shape[0] == 6
    anything = strategy.fuse(conditioned.members, 6, torch.Generator().manual_seed(3), context=context, **params)
    assert not torch.equal(anything.images, made[0].images)


def test_sample_class_by_name_records_it_and_replays(conditioned, tmp_path, capsys):
    run = str(conditioned.run.path)
    out = tmp_path / "squares.png"
    assert main(["sample", run, "--fusion", "vote", "--class", "square", "--n", "8", "--out", str(out)]) == 0
    assert read_png_metadata(out)["class"] == 2
    again = tmp_path / "again.png"
    assert main(["sample", "--from-png", str(out), "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))
    strip = tmp_path / "strip.png"
    assert main(["sample", run, "--member", "vae", "--class", "0", "--interpolate", "1,2", "--n", "4",
                 "--out", str(strip)]) == 0
    assert read_png_metadata(strip)["class"] == 0
    capsys.readouterr()
    assert main(["sample", run, "--member", "dcgan", "--class", "circle", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no class 'circle'" in err


def test_class_on_a_run_without_labels_exits_2_with_one_line(tmp_path, tiny_npz, capsys):
    images, _ = shapes_dataset()
    np.savez(tmp_path / "plain.npz", images=images)
    config = tiny_config_dict(tmp_path / "plain.npz", members=["dcgan"], steps=2, checkpoint_every=2)
    Session.create(run_config(config), tmp_path / "run").train(2)
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "run"), "--member", "dcgan", "--class", "0",
                 "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no classes" in err


def test_evaluate_per_class_gives_an_fd_per_class_for_each_row(conditioned):
    from engine.evaluation import evaluate
    from engine.metrics.features import JudgeRecipe

    report = evaluate(conditioned, 30, fusions={"mixture": ("mixture", {"weights": "dcgan:1,vae:1"})},
                      judge_recipe=JudgeRecipe(steps=20), per_class=True)
    table = report.per_class
    assert table.classes == list(SHAPES)
    assert set(table.fd) == {"dcgan", "vae", "diffusion", "mixture"}
    for by_class in table.fd.values():
        assert set(by_class) <= set(SHAPES) and all(math.isfinite(v) and v >= 0 for v in by_class.values())
    assert set(table.fd["dcgan"]) | set(table.skipped) >= set(SHAPES)
    assert set(table.accuracy) == {"dcgan", "vae", "diffusion", "mixture", "reference"}
    assert all(0 <= share <= 1 for shares in table.accuracy.values() for share in shares.values())
    assert "per_class" in report.to_json()
    from engine.report import eval_table

    text = eval_table(report)
    assert "FD per class" in text and "classifies as the class asked for" in text


def test_a_vote_for_one_class_fits_its_shares_against_that_class(conditioned, monkeypatch):
    from engine.evaluation import lazy_context
    from engine.fusion.registry import fusion

    context = lazy_context(conditioned)
    asked = []
    original = type(context).reference_for
    monkeypatch.setattr(type(context), "reference_for", lambda self, label: asked.append(label) or original(self, label))
    vote = fusion("vote")
    vote.fuse(conditioned.members, 6, torch.Generator().manual_seed(0), context=context, label=1, **vote.validate({}))
    assert asked == [1]
    data = conditioned.data
    from engine.metrics.picking import PickingSpace

    picking = PickingSpace(data, conditioned.device)
    picks = picking.fit_picks()
    assert len(picking.class_reference(1)) == int((data.labels[picks] == 1).sum())


def test_an_any_class_vote_is_a_vote_per_class_at_each_class_training_share(conditioned, monkeypatch):
    from engine.evaluation import lazy_context
    from engine.fusion.registry import fusion
    from engine.fusion.vote import Vote, largest_remainders

    vote = fusion("vote")
    params = vote.validate({})
    asked = []
    original = Vote.fuse
    monkeypatch.setattr(Vote, "fuse", lambda self, members, n, generator, **kw:
                        asked.append((kw.get("label"), n)) or original(self, members, n, generator, **kw))
    context = lazy_context(conditioned)
    batch = vote.fuse(conditioned.members, 11, torch.Generator().manual_seed(0), context=context, **params)
    shares = torch.stack([conditioned.member(k).class_counts.shares() for k in CONDITIONAL]).mean(0)
    per_class = largest_remainders(shares.tolist(), 11)
    assert asked == [(None, 11)] + [(k, count) for k, count in enumerate(per_class) if count]
    assert len(batch.images) == len(batch.provenance) == 11
    again = vote.fuse(conditioned.members, 11, torch.Generator().manual_seed(0), context=context, **params)
    assert torch.equal(batch.images, again.images)


def test_classifier_free_guidance_steers_an_asked_class_and_leaves_any_alone(conditioned):
    member = conditioned.member("diffusion")
    seeded = lambda: torch.Generator().manual_seed(6)  # noqa: E731
    plain = {"any": member.sample(4, seeded()), "asked": member.sample(4, seeded(), label=1)}
    original = member.config
    try:
        for scale in (1.0, 3.0):
            member.config = dataclasses.replace(original, params={**original.params, "class_guidance": scale})
            assert torch.equal(member.sample(4, seeded()), plain["any"])  # any class: never guided
            asked = member.sample(4, seeded(), label=1)
            assert torch.equal(asked, plain["asked"]) == (scale == original.params["class_guidance"])
    finally:
        member.config = original
