"""Refine: a fast member's images, noised to ``strength``, are denoised by the diffusion member
(an SDEdit-style cascade: the fast member proposes the layout, the diffusion model the detail)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext, generators_of, seeded_copy
from engine.members.base import Member
from engine.members.registry import MEMBERS, kinds_text, member_class


class Refine(Fusion):
    """The refiner is the run's member that ``can_refine``; the sources are its members that sample
    and do not refine ("auto": the first of them in registry order)."""

    name = "refine"
    title = "Diffusion refinement"
    params = (
        Param("source", "auto", choices=("auto",), member_choice="draft", help="the member whose images are refined"),
        Param("strength", 0.4, 0.02, 1.0, help="noise level added before denoising (1 = from scratch)"),
        Param("steps", 5, 1, 200, help="Euler steps of the denoiser over [strength, 0]"),
    )

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        classes = [member_class(k) for k in kinds]
        if not any(c.can_refine for c in classes):
            return f"needs a {kinds_text('refine')} member in the run"
        if not any(c.can_sample and not c.can_refine for c in classes):
            return f"needs a member besides the {kinds_text('refine')} one that makes images ({kinds_text('draft')})"
        return ""

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        refiner = next((m for m in members.values() if m.can_refine), None)
        if refiner is None:
            raise UserError(f"refine needs a {kinds_text('refine')} member in the run")
        source_name = params.get("source", "auto")
        candidates = {name: m for name, m in generators_of(members, label).items() if not m.can_refine}
        if source_name == "auto":
            order = list(MEMBERS)
            preferred = sorted(candidates, key=lambda name: order.index(name) if name in order else len(order))
            source_name = (preferred or [None])[0]
        if source_name not in candidates:
            raise UserError(f"refine source {source_name!r} is not a sampling member of this run "
                            f"(it has: {', '.join(candidates) or f'none besides the {refiner.name} member'})")
        drafts = candidates[source_name].sample(n, seeded_copy(generator), label=label)
        images = refiner.refine(drafts, float(params.get("strength", 0.4)), int(params.get("steps", 5)), generator,
                                label=label)
        return FusedBatch(images, (f"refine({source_name})",) * n)
