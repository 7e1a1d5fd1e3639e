"""A member's pace: its optimizer steps per ensemble step, kept exactly through a resume."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.config import RunConfig
from engine.errors import UserError
from engine.members.registry import run_config
from engine.session import Session
from engine.training.pace import quota, rounds_done
from tests.training.test_resume import final_weights


@pytest.mark.parametrize("pace", [0.05, 0.3, 0.5, 2 / 3, 1.0, 1.5, 2.0, 3.0, 20.0])
def test_rounds_done_inverts_quota(pace):
    assert rounds_done(pace, 0) == 0  # a member that took no step did no round
    for steps in range(1, 200):
        rounds = rounds_done(pace, steps)
        assert quota(pace, rounds) <= steps < quota(pace, rounds + 1), (pace, steps)
    assert [quota(pace, r) for r in range(5)] == sorted(quota(pace, r) for r in range(5))


def paced(config: RunConfig, paces: dict[str, float]) -> RunConfig:
    return dataclasses.replace(config, members=tuple(dataclasses.replace(m, pace=paces.get(m.kind, m.pace))
                                                     for m in config.members))


def test_each_member_takes_its_pace_of_steps_and_a_resume_keeps_them(tiny_config, tmp_path):
    config = paced(tiny_config(["dcgan", "vae"], steps=6, checkpoint_every=3), {"dcgan": 2.0, "vae": 0.5})
    straight = Session.create(config, tmp_path / "straight")
    straight.train(6)
    assert (straight.member("dcgan").step, straight.member("vae").step, straight.step) == (12, 3, 6)

    first = Session.create(config, tmp_path / "split")
    first.train(3)
    assert (first.member("dcgan").step, first.member("vae").step, first.step) == (6, 1, 3)
    resumed = Session.open(tmp_path / "split")
    assert resumed.step == 3 and resumed.config.member("dcgan").pace == 2.0  # run.json keeps the paces
    resumed.train(6)
    assert (resumed.member("dcgan").step, resumed.member("vae").step) == (12, 3)
    straight_weights, resumed_weights = final_weights(straight), final_weights(resumed)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_a_pace_out_of_range_is_refused_with_the_member_named(tiny_config):
    raw = tiny_config(["dcgan"], steps=2).to_dict()
    raw["members"][0]["pace"] = 0
    with pytest.raises(UserError, match=r"\[members.dcgan\] pace"):
        run_config(raw)


def test_a_member_given_no_pace_takes_its_class_default_and_a_run_follows_them(tiny_npz, tmp_path):
    from engine.members.registry import member_class
    from tests.conftest import tiny_config_dict

    raw = tiny_config_dict(tiny_npz, steps=4, checkpoint_every=4)
    for member in raw["members"]:
        del member["pace"]
    config = run_config(raw)
    assert {m.kind: m.pace for m in config.members} == {m.kind: member_class(m.kind).default_pace
                                                         for m in config.members}
    assert config.member("dcgan").pace > 1 > config.member("diffusion").pace  # the measured split
    session = Session.create(config, tmp_path / "run")
    session.train(4)
    assert {k: m.step for k, m in session.members.items()} == {m.kind: quota(m.pace, 4) for m in config.members}
    assert session.step == 4


@pytest.mark.parametrize("stopped_at", [0, 1, 2, 3, 6, 7])
def test_a_run_of_slow_members_reopens_at_the_step_it_was_saved_at(tiny_config, tmp_path, stopped_at):
    """Three optimizer steps at pace ½ are six or seven ensemble steps: the checkpoint says which."""
    config = tiny_config(["vae", "diffusion"], steps=stopped_at, checkpoint_every=1000)
    raw = config.to_dict()
    for member in raw["members"]:
        member["pace"] = 0.5
    session = Session.create(run_config(raw), tmp_path / "run")
    assert session.step == 0
    session.train(stopped_at)
    assert session.step == stopped_at and session.member("vae").step == stopped_at // 2
    reopened = Session.open(tmp_path / "run")
    assert reopened.step == stopped_at and reopened.checkpoint.name == f"step-{stopped_at:07d}"
    reopened.train(stopped_at + 2)  # goes on as if never stopped: one more step each
    assert reopened.step == stopped_at + 2 and reopened.member("vae").step == (stopped_at + 2) // 2


def test_members_stepped_outside_the_trainer_set_the_step_again(tiny_config, tmp_path):
    """The speed bench steps a member by hand between trainer calls: the step follows the members."""
    session = Session.create(tiny_config(["vae"], steps=4, checkpoint_every=1000), tmp_path / "run")
    session.train(2)
    vae = session.member("vae")
    for _ in range(3):
        vae.train_step(vae.draw_batch(session.dataset, vae.config.batch_size))
    assert session.step == rounds_done(vae.config.pace, vae.step) == 5
    session.train(session.step + 1)
    assert session.step == 6 and vae.step == quota(vae.config.pace, 6)
