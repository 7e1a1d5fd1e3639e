"""EMA copies average by a half-life counted in images, so a halved batch keeps the horizon."""
from __future__ import annotations

import math

import pytest
import torch

from engine.members.ema import EMA_HALF_LIFE, ema_beta
from engine.members.registry import MEMBERS


def test_equal_images_decay_alike_whatever_the_batch():
    late = 10_000  # past the ramp-up: the half-life is the set one
    one_step_of_64 = ema_beta(late, 5000, 64)
    two_steps_of_32 = ema_beta(2 * late, 5000, 32) ** 2
    assert one_step_of_64 == pytest.approx(two_steps_of_32, rel=1e-12)
    assert one_step_of_64 == pytest.approx(0.5 ** (64 / 5000))


def test_the_half_life_ramps_up_with_the_images_seen():
    assert ema_beta(0, 10_000, 64) < 1e-5  # after one batch the average is the network itself
    assert ema_beta(99, 10_000, 64) == pytest.approx(0.5 ** (64 / (0.05 * 100 * 64)))
    assert ema_beta(5, 0, 64) == 0.0  # half-life 0: no averaging


def test_the_device_step_count_gives_the_same_decay():
    from engine.members.registry import run_config

    config = run_config({"members": [{"kind": "dcgan", "params": {"width": 4, "latent": 4}}]}).members[0]
    member = MEMBERS["dcgan"](config, (1, 16, 16), 0, torch.device("cpu"), 0)
    member.step = 40
    host = member.ema_beta(EMA_HALF_LIFE)
    member.step_count = torch.tensor(40)
    assert float(member.ema_beta(EMA_HALF_LIFE)) == pytest.approx(host, rel=1e-5)


def test_each_member_kind_ramps_up_over_its_own_share_of_the_images():
    from engine.members.registry import run_config

    config = run_config({"members": [{"kind": "diffusion", "params": {"width": 8}}]}).members[0]
    member = MEMBERS["diffusion"](config, (1, 16, 16), 0, torch.device("cpu"), 0)
    member.batch_images, member.step = 64, 99
    assert member.ema_rampup == 0.10 and MEMBERS["dcgan"].ema_rampup == 0.05
    assert member.ema_beta(EMA_HALF_LIFE) == pytest.approx(0.5 ** (64 / (0.10 * 100 * 64)))
    member.step_count = torch.tensor(99)  # the device path reads the same share
    assert float(member.ema_beta(EMA_HALF_LIFE)) == pytest.approx(0.5 ** (64 / (0.10 * 100 * 64)), rel=1e-5)


@pytest.mark.parametrize("kind", ["dcgan", "diffusion"])
def test_an_old_runs_per_step_decay_becomes_its_half_life(kind):
    from engine.members.registry import run_config

    config = run_config({"members": [{"kind": kind, "batch_size": 64, "params": {"ema_decay": 0.999}}]})
    params = config.members[0].params
    assert "ema_decay" not in params
    assert params["ema_half_life"] == round(64 * math.log(0.5) / math.log(0.999))  # 44,339 images
    assert 0.5 ** (64 / params["ema_half_life"]) == pytest.approx(0.999, abs=1e-6)


def test_the_ema_generator_samples_with_its_own_batch_statistics():
    from engine.members.registry import run_config

    config = run_config({"members": [{"kind": "dcgan", "batch_size": 8, "params": {"width": 4, "latent": 4}}]}).members[0]
    member = MEMBERS["dcgan"](config, (1, 16, 16), 0, torch.device("cpu"), 0)
    with torch.no_grad():
        member.G.train()
        for _ in range(5):  # G's running statistics drift away from what G_ema's weights give
            member.G(torch.randn(8, 4) * 3)
        member.G_ema.load_state_dict(member.G.state_dict())
        for p in member.G_ema.parameters():
            p.mul_(0.5)
    first = member.sample(6, torch.Generator().manual_seed(0))
    norm = next(m for m in member.G_ema.modules() if isinstance(m, torch.nn.BatchNorm2d))
    g_norm = next(m for m in member.G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(norm.running_mean, g_norm.running_mean)
    assert torch.equal(member.sample(6, torch.Generator().manual_seed(0)), first)  # a fixed seed: same statistics
    assert not member.G_ema.training
