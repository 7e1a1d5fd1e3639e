"""Shared fixtures: a tiny structured dataset and tiny member configs (CPU, seconds per test)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the evaluation judge and feature caches go to a throw-away folder, never the user's cache
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="chorus-test-cache-")
torch.set_num_threads(min(2, torch.get_num_threads()))



def tiny_params(kind: str) -> dict[str, Any]:
    """The member class's own tiny parameters (16-px images, seconds per test)."""
    from engine.members.registry import member_class

    return dict(member_class(kind).tiny_params)


def registered_kinds() -> tuple[str, ...]:
    """Every registered member kind (a test that registers a toy member adds it)."""
    from engine.members.registry import MEMBERS

    return tuple(MEMBERS)


def shapes_dataset(n: int = 96, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three easy classes on a dark ground: a horizontal bar, a vertical bar, a square."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), dtype=np.uint8)
    labels = np.arange(n) % 3
    for i, label in enumerate(labels):
        a, b = rng.integers(2, size - 6, size=2)
        if label == 0:
            images[i, a:a + 3, 2:size - 2] = 230
        elif label == 1:
            images[i, 2:size - 2, b:b + 3] = 230
        else:
            images[i, a:a + 5, b:b + 5] = 200
    return images, labels.astype(np.int64)


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    images, labels = shapes_dataset()
    path = tmp_path / "shapes.npz"
    np.savez(path, images=images, labels=labels)
    return path


def tiny_config_dict(source: Path | str, members=None, **train: Any) -> dict:
    """A run of ``members`` (default: every registered kind) with their tiny parameters, each taking
    one step per ensemble step (the members' default paces are checked in tests/training/test_pace.py)."""
    return {
        "data": {"source": str(source), "size": 16, "channels": 1},
        "members": [{"kind": k, "batch_size": 16, "pace": 1.0, "params": tiny_params(k)}
                    for k in members or registered_kinds()],
        "train": {"steps": 40, "seed": 0, "device": "cpu", "log_every": 1, "checkpoint_every": 20,
                  "preview_every": 1000, **train},
    }


@pytest.fixture
def tiny_config(tiny_npz: Path):
    from engine.config import RunConfig
    from engine.members.registry import run_config

    def make(members=None, **train: Any) -> RunConfig:
        return run_config(tiny_config_dict(tiny_npz, members, **train))

    return make


def with_classes(config: dict, classes: str) -> dict:
    """``config`` (a run config dict) with ``classes`` set for every generator that can learn them."""
    from engine.members.registry import member_class

    for member in config["members"]:
        if member_class(member["kind"]).can_condition:
            member["params"]["classes"] = classes
    return config


def train_tiny_run(folder: Path, steps: int = 6, checkpoint_every: int = 2, classes: str | None = None):
    """A run of every member on the shapes data, trained a few steps with several checkpoints;
    ``classes`` set for every generator that can learn them (None: the default)."""
    from engine.members.registry import run_config
    from engine.session import Session

    images, labels = shapes_dataset()
    np.savez(folder / "d.npz", images=images, labels=labels)
    config = tiny_config_dict(folder / "d.npz", steps=steps, checkpoint_every=checkpoint_every)
    config = run_config(with_classes(config, classes) if classes else config)
    session = Session.create(config, folder / "run")
    session.train(steps)
    return session


SHAPE_CLASSES = ("bar-across", "bar-down", "square")  # shapes_dataset's classes, as subfolder names


def train_labelled_run(folder: Path, classes: str = "on", steps: int = 12, members=None):
    """A run on the shapes as a folder with one subfolder per class (a quarter held out), its
    generators' ``classes`` set to ``classes``, trained ``steps`` steps."""
    from PIL import Image

    from engine.members.registry import run_config
    from engine.session import Session

    images, labels = shapes_dataset()
    for name in SHAPE_CLASSES:
        (folder / "data" / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / "data" / SHAPE_CLASSES[int(label)] / f"{i:03d}.png")
    config = tiny_config_dict(folder / "data", members, steps=steps, checkpoint_every=steps)
    config["data"]["holdout"] = 0.25
    session = Session.create(run_config(with_classes(config, classes)), folder / "run")
    session.train(steps)
    return session
