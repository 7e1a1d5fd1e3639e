"""Mixture: each image comes whole from member i with probability w_i."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from engine.config import Param
from engine.fusion.base import FusedBatch, Fusion, generators_of, normalised_weights, seeded_copy
from engine.members.base import Member


class Mixture(Fusion):
    name = "mixture"
    title = "Mixture of members"
    params = (Param("weights", None, 0.0, 100.0, per_member=True, help="probability weight per member"),)

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, **params: Any) -> FusedBatch:
        found = generators_of(members)
        names = list(found)
        share = normalised_weights(params.get("weights"), names)
        probs = torch.tensor([share[name] for name in names], dtype=torch.float64)
        choice = torch.multinomial(probs, n, replacement=True, generator=generator)
        images: torch.Tensor | None = None
        for index, name in enumerate(names):
            slots = (choice == index).nonzero().flatten()
            if len(slots) == 0:
                continue
            drawn = found[name].sample(len(slots), seeded_copy(generator))
            if images is None:
                images = torch.empty((n, *drawn.shape[1:]), device=drawn.device)
            images[slots.to(drawn.device)] = drawn
        provenance = tuple(names[i] for i in choice.tolist())
        return FusedBatch(images, provenance)
