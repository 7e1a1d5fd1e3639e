"""Adaptive differentiable augmentation of what the DCGAN's D sees (engine/members/augment.py)."""
from __future__ import annotations

import numpy as np
import torch

from engine.data.dataset import Batch, DeviceDataset
from engine.data.sources import LoadedData
from engine.members.augment import AUGMENT_BELOW, AdaptiveAugment
from engine.members.dcgan import DCGAN
from engine.members.registry import member_config
from engine.config import DataConfig
from tests.conftest import shapes_dataset, tiny_params


def dcgan(augment: str, channels: int = 1) -> DCGAN:
    config = member_config({"kind": "dcgan", "batch_size": 8, "params": {**tiny_params("dcgan"), "augment": augment}},
                           DataConfig(source="fashion-mnist", size=16, channels=channels))
    return DCGAN(config, (channels, 16, 16), 0, torch.device("cpu"), seed=0)


def test_augmentation_is_differentiable_and_reaches_g():
    augment = AdaptiveAugment(p=1.0)
    x = torch.rand(8, 4, 16, 16, requires_grad=True) * 2 - 1
    x.retain_grad()
    y = augment(x, torch.Generator().manual_seed(0))
    assert not torch.equal(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

    member = dcgan("adaptive")
    member.augment.p.fill_(1.0)
    images, _ = shapes_dataset(32, 16)
    data = LoadedData(images[..., None], None, (), "x", "")
    batch = DeviceDataset(data, torch.device("cpu")).batch(8, torch.Generator().manual_seed(0))
    terms = member.losses(batch)
    d_term = next(terms)
    member.optimize(d_term.optimizer, d_term.loss)
    g_term = next(terms)
    g_term.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in member.G.parameters())
    assert sum(float(p.grad.abs().sum()) for p in member.G.parameters()) > 0


def test_rgba_keeps_its_alpha_through_colour_changes():
    augment = AdaptiveAugment(p=1.0)
    x = torch.rand(16, 4, 12, 12) * 2 - 1
    x[:, 3] = 1.0  # opaque
    from engine.members.augment import brightness, contrast, saturation

    for operation in (brightness, saturation, contrast):
        assert torch.equal(operation(x, torch.Generator().manual_seed(1))[:, 3], x[:, 3])
    assert augment(x, torch.Generator().manual_seed(2)).shape == x.shape


def test_off_means_the_images_pass_and_no_random_number_is_drawn():
    augment = AdaptiveAugment(enabled=False, p=1.0)
    x = torch.rand(4, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert augment(x, generator) is x and torch.equal(generator.get_state(), state)
    member = dcgan("off")
    assert "augment" not in member.networks()  # an off run's checkpoints are as before
    assert "augment" in dcgan("adaptive").networks()


def test_p_rises_while_d_is_sure_of_the_training_images_and_falls_when_not():
    augment = AdaptiveAugment(target=0.6, images_to_one=1000)
    for _ in range(40):
        augment.observe(torch.full((64,), 3.0))  # D calls every training image real
    risen = float(augment.p)
    assert risen > 0.5
    for _ in range(80):
        augment.observe(torch.full((64,), -1.0))  # D unsure: below the target
    assert float(augment.p) < risen
    assert 0.0 <= float(augment.p) <= 1.0


def test_auto_augments_small_folders_only():
    assert DCGAN.settle_params({"augment": "auto"}, 1_606)["augment"] == "adaptive"
    assert DCGAN.settle_params({"augment": "auto"}, 60_000)["augment"] == "off"
    assert DCGAN.settle_params({"augment": "off"}, 100)["augment"] == "off"
    assert AUGMENT_BELOW > 2_000


def test_p_is_logged_and_kept_in_checkpoints():
    member = dcgan("adaptive")
    images, _ = shapes_dataset(32, 16)
    data = LoadedData(images[..., None], None, (), "x", "")
    dataset = DeviceDataset(data, torch.device("cpu"))
    logged = member.train_step(dataset.batch(8, member.generator))
    assert "augment_p" in logged
    member.augment.p.fill_(0.37)
    again = dcgan("adaptive")
    again.load_state_dict(member.state_dict())
    assert np.isclose(float(again.augment.p), 0.37)


def test_a_voting_judge_on_a_small_folder_trains_on_augmented_images_the_evaluation_judge_does_not():
    from engine.members.judge import Judge

    assert Judge.settle_params({"augment": "auto"}, 1_606)["augment"] == "on"
    assert Judge.settle_params({"augment": "auto"}, 60_000)["augment"] == "off"
    data = DataConfig(source="fashion-mnist", size=16, channels=1)
    images = torch.rand(8, 1, 16, 16) * 2 - 1
    seen = {}
    for setting in ("on", "auto"):  # "auto" unsettled: the evaluation judge (engine/metrics/features.py)
        config = member_config({"kind": "judge", "batch_size": 8, "params": {"augment": setting}}, data)
        judge = Judge(config, (1, 16, 16), 0, torch.device("cpu"), seed=0)
        seen[setting] = judge._task(Batch(images, None))[0]
    assert not torch.equal(seen["on"], seen["auto"])
    rotated = [torch.rot90(images, r, dims=(2, 3)) for r in range(4)]
    assert all(any(torch.equal(seen["auto"][i], turn[i]) for turn in rotated) for i in range(8))
