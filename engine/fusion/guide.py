"""Guide: the diffusion member samples while another member's critic steers it (engine/members/
diffusion.py ``sample_guided``): the DCGAN's discriminator says which way looks more real, the judge
which way looks more like a clear class (or, without labels, upright). Strength 0 is plain diffusion."""
from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext
from engine.members.base import Member
from engine.members.registry import MEMBERS, kinds_text, member_class

DEFAULT_STRENGTH = 0.3  # docs/quality.md § Guided diffusion
CRITIC_ORDER = ("dcgan", "judge")  # "auto" takes the first of these the run has


class Guide(Fusion):
    """The sampler is the run's member that ``can_be_guided``; the critic one that ``can_guide``
    ("auto": the first in registry order, so the DCGAN's D before the judge)."""

    name = "guide"
    title = "Guided diffusion"
    params = (
        Param("critic", "auto", choices=("auto",), member_choice="guide",
              help="the member whose judgement steers the diffusion: a discriminator or the judge"),
        Param("strength", DEFAULT_STRENGTH, 0.0, 5.0,
              help="how far the critic may move an image over the whole path (RMS, pixel units); 0: plain diffusion"),
        Param("steps", 0, 0, 1000, help="Euler steps; 0: the diffusion member's own sample_steps"),
    )
    evaluation_plan = {"guide": {}, "guide-judge": {"critic": "judge"}}
    quick_params = {"steps": 2}

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        classes = [member_class(k) for k in kinds]
        if not any(c.can_be_guided for c in classes):
            return f"needs a {kinds_text('guided')} member in the run"
        if not any(c.can_guide for c in classes):
            return f"needs a member that can judge images ({kinds_text('guide')})"
        return ""

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        sampler = next((m for m in members.values() if m.can_be_guided), None)
        if sampler is None:
            raise UserError(f"guide needs a {kinds_text('guided')} member in the run")
        name, critic = pick_critic(members, params.get("critic", "auto"))
        strength = float(params.get("strength", DEFAULT_STRENGTH))
        images = sampler.sample_guided(n, generator, critic_for(critic, label), strength,
                                       int(params.get("steps", 0)) or None, label=label)
        return FusedBatch(images, (f"guide({sampler.name}←{name})",) * n)


def critic_for(critic: Member, label: int | None):
    """``critic``'s judgement of images as ones of class ``label`` (any: None)."""
    return critic.critic if label is None else functools.partial(critic.critic, label=label)


def pick_critic(members: Mapping[str, Member], name: str = "auto") -> tuple[str, Member]:
    """The critic asked for by name, or for "auto" the first member that can guide in ``CRITIC_ORDER``
    (then registry order)."""
    critics = {key: m for key, m in members.items() if m.can_guide}
    if name == "auto":
        order = [*CRITIC_ORDER, *MEMBERS]
        name = min(critics, key=lambda k: order.index(k) if k in order else len(order), default=None)
    if name not in critics:
        raise UserError(f"guide critic {name!r} is not a member of this run that can judge images "
                        f"(it has: {', '.join(critics) or 'none'})")
    return name, critics[name]
