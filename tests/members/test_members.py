"""Each member learns on a tiny dataset and samples images of the right shape, dtype and range."""
from __future__ import annotations

import math

import pytest
import torch

from engine.data.dataset import DeviceDataset
from engine.data.sources import load_data
from engine.members.registry import MEMBERS
from engine.session import member_seed


def build(config, kind, labels=True, fast=None):
    data = load_data(config.data)
    if not labels:
        data = type(data)(data.images, None, (), data.fingerprint, data.report)
    dataset = DeviceDataset(data, torch.device("cpu"))
    member_config = config.member(kind)
    member = MEMBERS[kind](member_config, dataset.image_shape, data.num_classes, torch.device("cpu"),
                           member_seed(0, kind), fast)
    return member, dataset


def train(member, dataset, steps):
    history = []
    for _ in range(steps):
        losses = member.train_step(dataset.batch(member.config.batch_size, member.generator))
        history.append({k: float(v) for k, v in losses.items()})
    return history


def mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("kind,key,steps", [("vae", "loss", 40), ("diffusion", "loss", 60), ("judge", "loss", 40)])
def test_member_loss_falls_on_tiny_data(tiny_config, kind, key, steps):
    member, dataset = build(tiny_config([kind]), kind)
    history = [h[key] for h in train(member, dataset, steps)]
    assert mean(history[-8:]) < 0.7 * mean(history[:3]), history
    assert member.step == steps


def test_dcgan_discriminator_learns_and_generator_moves_towards_data(tiny_config):
    member, dataset = build(tiny_config(["dcgan"]), "dcgan")
    real_mean = float(dataset.batch(64, torch.Generator().manual_seed(0)).images.mean())

    def gap():  # the data is a dark ground with thin bright strokes; an untrained G is mid-grey
        return abs(float(member.sample(64, torch.Generator().manual_seed(0)).mean()) - real_mean)

    before = gap()
    history = train(member, dataset, 150)
    # D starts at 2·ln 2 (chance) and learns to separate: its loss must fall below chance
    assert mean([h["loss_d"] for h in history[-10:]]) < 2 * math.log(2) - 0.1
    assert gap() < 0.5 * before


def test_judge_learns_rotation_without_labels(tmp_path):
    import numpy as np

    from engine.members.registry import run_config
    from tests.conftest import tiny_config_dict

    # an upright 'T' (bar on top, stem below) at random places: its rotations are distinguishable
    rng = np.random.default_rng(0)
    images = np.zeros((64, 16, 16), dtype=np.uint8)
    for image in images:
        a, b = rng.integers(1, 6, size=2)
        image[a:a + 2, b:b + 9] = 255
        image[a + 2:a + 10, b + 3:b + 6] = 160
    np.savez(tmp_path / "t.npz", images=images)
    member, dataset = build(run_config(tiny_config_dict(tmp_path / "t.npz", ["judge"])), "judge")
    assert not member.uses_labels
    history = [h["loss"] for h in train(member, dataset, 50)]
    assert mean(history[-8:]) < math.log(4) - 0.3, history


@pytest.mark.parametrize("kind", ["dcgan", "vae", "diffusion"])
def test_samples_have_shape_dtype_range_and_repeat_for_a_seed(tiny_config, kind):
    member, dataset = build(tiny_config([kind]), kind)
    train(member, dataset, 3)
    first = member.sample(5, torch.Generator().manual_seed(7))
    again = member.sample(5, torch.Generator().manual_seed(7))
    other = member.sample(5, torch.Generator().manual_seed(8))
    assert first.shape == (5, 1, 16, 16) and first.dtype == torch.float32
    assert float(first.min()) >= -1.0 and float(first.max()) <= 1.0
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("kind", ["dcgan", "vae", "judge"])
def test_score_is_one_number_per_image(tiny_config, kind):
    member, dataset = build(tiny_config([kind]), kind)
    scores = member.score(dataset.batch(6, torch.Generator().manual_seed(0)).images)
    assert scores.shape == (6,) and torch.isfinite(scores).all()


def test_diffusion_refine_keeps_shape_and_follows_strength(tiny_config):
    member, dataset = build(tiny_config(["diffusion"]), "diffusion")
    train(member, dataset, 5)
    images = dataset.batch(4, torch.Generator().manual_seed(0)).images
    light = member.refine(images, 0.1, 2, torch.Generator().manual_seed(1))
    heavy = member.refine(images, 0.9, 2, torch.Generator().manual_seed(1))
    assert light.shape == images.shape
    assert (light - images).abs().mean() < (heavy - images).abs().mean()


@pytest.mark.parametrize("fused", [False, True], ids=["torch-default", "fused"])  # fused: the CPU default
@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_trains(tiny_npz, optimizer, fused):
    from engine.accel import FastPaths
    from engine.members.registry import run_config
    from tests.conftest import tiny_config_dict

    raw = tiny_config_dict(tiny_npz, ["vae"])
    raw["members"][0]["optim"] = {"name": optimizer, "lr": 0.01 if optimizer == "sgd" else 1e-3}
    config = run_config(raw)
    member, dataset = build(config, "vae", fast=FastPaths(fused_optimizer=fused))
    kind = type(member.optimizers["vae"]).__name__.lower()
    assert kind == optimizer and bool(member.optimizers["vae"].param_groups[0]["fused"]) == fused
    history = [h["loss"] for h in train(member, dataset, 30)]
    assert mean(history[-5:]) < mean(history[:3])


def test_dcgan_and_vae_scale_to_sizes_and_channels():
    from engine.config import MemberConfig

    for size in (28, 32, 64):
        for channels in (1, 3):
            for kind in ("dcgan", "vae"):
                cls = MEMBERS[kind]
                config = MemberConfig(kind, cls.default_optim, 2, {"width": 4, "latent": 4, **(
                    {"ema_half_life": 1000} if kind == "dcgan" else {"beta": 1.0})})
                member = cls(config, (channels, size, size), 0, torch.device("cpu"), 0)
                assert member.sample(2, torch.Generator().manual_seed(0)).shape == (2, channels, size, size)


def test_a_gaussian_vae_learns_its_variance_and_scores_with_it(tiny_config):
    import dataclasses

    config = tiny_config(["vae"])
    vae = config.member("vae")
    gaussian = dataclasses.replace(vae, params={**vae.params, "likelihood": "gaussian"})
    config = dataclasses.replace(config, members=(gaussian,))
    member, dataset = build(config, "vae")
    history = train(member, dataset, 40)
    assert mean([h["recon"] for h in history[-8:]]) < mean([h["recon"] for h in history[:3]])
    assert float(member.decoder.log_sigma) < 0  # σ below 1: the reconstructions got closer than chance
    scores = member.score(dataset.batch(6, torch.Generator().manual_seed(0)).images)
    assert scores.shape == (6,) and torch.isfinite(scores).all()
