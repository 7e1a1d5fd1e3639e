"""Pixel average of every member's images for the same seed (the naive baseline; it blurs)."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from engine.config import Param
from engine.fusion.base import FusedBatch, Fusion, FusionContext, generators_of, normalised_weights, seeded_copy
from engine.members.base import Member


def pixel_mean(members: Mapping[str, Member], n: int, generator: torch.Generator,
               weights: Mapping[str, float] | None, label: int | None = None) -> FusedBatch:
    found = generators_of(members, label)
    share = normalised_weights(weights, list(found))
    used = [name for name in found if share[name] > 0]
    total = sum(share[name] * found[name].sample(n, seeded_copy(generator), label=label) for name in used)
    made_by = f"average({','.join(used)})"
    return FusedBatch(total.clamp(-1, 1), (made_by,) * n)


class Average(Fusion):
    name = "average"
    title = "Pixel average"

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        return pixel_mean(members, n, generator, None, label)


class WeightedAverage(Fusion):
    name = "weighted-average"
    title = "Weighted pixel average"
    params = (Param("weights", None, 0.0, 100.0, per_member=True, help="weight per member, e.g. dcgan:2,vae:1"),)
    evaluation_plan = {"weighted-average": {"weights": "inverse-fd"}}  # weights ∝ 1/FD of each member

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        return pixel_mean(members, n, generator, params.get("weights"), label)
