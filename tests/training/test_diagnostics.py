"""Collapse and blur are said: diversity and sharpness ratios at each preview, a warning when low."""
from __future__ import annotations

import json

import numpy as np
import torch

from engine.data.dataset import to_signed_float
from engine.members.dcgan import DCGAN
from engine.session import Session
from engine.training.diagnostics import STREAK, PreviewCheck
from engine.training.events import PreviewReady
from tests.conftest import shapes_dataset


def real_images(n: int, seed: int) -> torch.Tensor:
    images, _ = shapes_dataset(n, 16, seed=seed)
    return to_signed_float(torch.from_numpy(images[:, None]))


def test_real_images_score_about_one_and_raise_no_warning():
    check = PreviewCheck(real_images(256, 0))
    for preview in range(4):
        diversity, sharpness = check.ratios(real_images(16, preview + 1))
        assert 0.8 < diversity < 1.25 and 0.6 < sharpness < 1.6
        assert check.warning("vae", "VAE", diversity, sharpness) == ""


def test_one_image_repeated_is_said_to_have_collapsed_once():
    check = PreviewCheck(real_images(256, 0))
    repeated = real_images(1, 5).repeat(16, 1, 1, 1)
    said = []
    for _ in range(STREAK + 2):
        diversity, sharpness = check.ratios(repeated)
        said.append(check.warning("dcgan", "DCGAN", diversity, sharpness))
    assert diversity < 0.05
    assert [bool(w) for w in said] == [False] * (STREAK - 1) + [True] + [False] * 2  # once a stretch
    assert said[STREAK - 1].startswith("DCGAN's images look alike")


def test_blur_is_said():
    check = PreviewCheck(real_images(256, 0))
    blurred = torch.nn.functional.avg_pool2d(real_images(16, 3), 5, stride=1, padding=2)
    said = [check.warning("vae", "VAE", *check.ratios(blurred)) for _ in range(STREAK)]
    assert "blurry" in said[-1]


def test_the_trainer_warns_about_a_collapsed_member_and_logs_the_ratios(tiny_config, tmp_path, monkeypatch):
    one = real_images(1, 9)
    monkeypatch.setattr(DCGAN, "sample", lambda self, n, generator, **_: one.repeat(n, 1, 1, 1))
    config = tiny_config(members=("dcgan", "vae"), steps=6, preview_every=2)
    session = Session.create(config, tmp_path / "run")
    events = []
    session.train(6, [events.append])
    previews = [e for e in events if isinstance(e, PreviewReady)]
    dcgan = [e for e in previews if e.member == "dcgan"]
    assert len(dcgan) == 3 and all(e.diversity < 0.05 for e in dcgan)
    assert [bool(e.warning) for e in dcgan] == [False, True, False]
    vae = [e for e in previews if e.member == "vae"]  # 6 steps in: its own ratios, measured the same way
    assert len(vae) == 3 and all(np.isfinite([e.diversity, e.sharpness]).all() for e in vae)
    records = [json.loads(line) for line in session.run.metrics_log.read_text().splitlines()]
    logged = [r for r in records if "diversity" in r]
    assert {(r["member"], r["step"]) for r in logged} == {(m, s) for m in ("dcgan", "vae") for s in (2, 4, 6)}
    assert all(np.isfinite(r["sharpness"]) for r in logged)
