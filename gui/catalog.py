"""What the pages and widgets build their controls from, and how they check a value as it is typed:
the registered members and fusions with their declared parameters, the engine's choices and
defaults (read from its config dataclasses, never spelt again here), and validation that answers
with the engine's own messages. Plain functions, no threads: widgets import this, never the bridge.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from engine.config import (AUTO, CHANNEL_NAMES, COMPILE_MODES, DEVICES, FASHION_MNIST, MAX_SAMPLES,  # noqa: F401
                           MIN_EVAL_SAMPLES, PACE_RANGE, OPTIMIZERS, PRECISIONS, DataConfig, Param, TrainConfig)
from engine.errors import UserError
from engine.store.images import grid  # imported here, not on the first preview (a 100+ ms stall)

__all__ = ["UserError", "Param", "AUTO", "CHANNEL_NAMES", "OPTIMIZERS", "PRECISIONS", "COMPILE_MODES", "DEVICES",
           "FASHION_MNIST", "MAX_SAMPLES", "MIN_EVAL_SAMPLES", "PACE_RANGE", "TRAIN_DEFAULTS", "DATA_DEFAULTS",
           "MemberSpec", "FusionSpec",
           "member_specs", "fusion_specs", "validate_data", "validate_member", "validate_run", "validate_fusion",
           "tile", "export_png", "export_sprite_sheet", "export_animation", "export_singles", "read_png_metadata",
           "is_run_folder"]

TRAIN_DEFAULTS = TrainConfig()   # the training page's defaults: the engine's own
DATA_DEFAULTS = DataConfig()     # the data page's defaults


@dataclass(frozen=True)
class MemberSpec:
    kind: str
    title: str
    params: tuple[Param, ...]
    optim: dict[str, Any]
    batch_size: int
    can_sample: bool
    can_score: bool
    can_vary: str = ""            # "latent", "image" or "" (engine/members/base.py)
    can_interpolate: bool = False
    pace: float = 1.0             # optimizer steps per ensemble step (engine/training/pace.py)


@dataclass(frozen=True)
class FusionSpec:
    name: str
    title: str
    params: tuple[Param, ...]
    unavailable: Callable[[Sequence[str]], str]  # member kinds → why a run cannot use it ("" if it can)


def member_specs() -> dict[str, MemberSpec]:
    from engine.members.registry import MEMBERS

    specs = {}
    for kind, cls in MEMBERS.items():
        optim = cls.default_optim
        specs[kind] = MemberSpec(kind, cls.title, tuple(cls.params),
                                 {"name": optim.name, "lr": optim.lr, "betas": list(optim.betas),
                                  "momentum": optim.momentum, "weight_decay": optim.weight_decay},
                                 cls.default_batch_size, cls.can_sample, cls.can_score, cls.can_vary,
                                 cls.can_interpolate, cls.default_pace)
    return specs


def fusion_specs() -> dict[str, FusionSpec]:
    from engine.fusion.registry import FUSIONS

    return {name: FusionSpec(name, cls.title, cls.parameters(), cls.unavailable) for name, cls in FUSIONS.items()}


def validate_data(raw: dict[str, Any]) -> dict[str, Any]:
    return dataclasses.asdict(DataConfig.from_dict(raw))


def validate_member(raw: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The member's settings, normalised; UserError with the reason when a value is refused."""
    from engine.members.registry import member_config

    return member_config(raw, DataConfig.from_dict(data)).to_dict()


def validate_run(raw: dict[str, Any]) -> dict[str, Any]:
    """A new run's settings, normalised, or UserError (a judge alone is refused: nothing to see)."""
    from engine.members.registry import require_a_generator, run_config

    config = run_config(raw)
    require_a_generator(config)
    return config.to_dict()


def validate_fusion(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    from engine.fusion.registry import fusion

    return fusion(name).validate(raw)


def tile(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    return grid(images, columns)


def export_png(path: str | Path, image: np.ndarray, metadata: dict[str, Any]) -> Path:
    from engine.store.images import save_png

    return save_png(Path(path), image, metadata)


def export_sprite_sheet(path: str | Path, images: np.ndarray, columns: int, spacing: int,
                        metadata: dict[str, Any]) -> Path:
    """``columns`` images a row, ``spacing`` pixels between (transparent for RGBA), the recipe inside."""
    from engine.store.images import save_png, sprite_sheet

    return save_png(Path(path), sprite_sheet(images, columns, spacing), metadata)


def export_animation(path: str | Path, images: np.ndarray) -> Path:
    from engine.store.images import save_animation

    return save_animation(Path(path), images)


def export_singles(folder: str | Path, images: np.ndarray, recipes: list[dict[str, Any]], stem: str) -> list[Path]:
    """One PNG per image, each with its own recipe (``sample --variations-of`` reads it)."""
    from engine.store.images import save_singles

    return save_singles(Path(folder), images, recipes, stem)


def read_png_metadata(path: str | Path) -> dict[str, Any]:
    from engine.store.images import read_png_metadata as read

    return read(Path(path))


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / "run.json").is_file()
