"""Refine: a fast member's images, noised to ``strength``, are denoised by the diffusion member
(an SDEdit-style cascade: the fast member proposes the layout, the diffusion model the detail)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext, generators_of, seeded_copy
from engine.members.base import Member

SOURCES = ("auto", "dcgan", "vae")


class Refine(Fusion):
    name = "refine"
    title = "Diffusion refinement"
    params = (
        Param("source", "auto", choices=SOURCES, member_choice=True, help="the member whose images are refined"),
        Param("strength", 0.4, 0.02, 1.0, help="noise level added before denoising (1 = from scratch)"),
        Param("steps", 5, 1, 200, help="Euler steps of the denoiser over [strength, 0]"),
    )

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        from engine.members.registry import member_class

        classes = [member_class(k) for k in kinds]
        if not any(hasattr(c, "refine") for c in classes):
            return "needs a diffusion member in the run"
        if not any(c.can_sample and not hasattr(c, "refine") for c in classes):
            return "needs a member besides the diffusion one that makes images (dcgan or vae)"
        return ""

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, **params: Any) -> FusedBatch:
        refiner = next((m for m in members.values() if hasattr(m, "refine")), None)
        if refiner is None:
            raise UserError("refine needs a diffusion member in the run")
        source_name = params.get("source", "auto")
        candidates = {name: m for name, m in generators_of(members).items() if m is not refiner}
        if source_name == "auto":
            preferred = [name for name in ("dcgan", "vae") if name in candidates]
            source_name = (preferred or list(candidates) or [None])[0]
        if source_name not in candidates:
            raise UserError(f"refine source {source_name!r} is not a sampling member of this run "
                            f"(it has: {', '.join(candidates) or 'none besides the diffusion member'})")
        drafts = candidates[source_name].sample(n, seeded_copy(generator))
        images = refiner.refine(drafts, float(params.get("strength", 0.4)), int(params.get("steps", 5)), generator)
        return FusedBatch(images, (f"refine({source_name})",) * n)
