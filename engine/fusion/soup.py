"""Soup: one member sampled with the average of its weights over the run's last checkpoints
(model soups / checkpoint averaging; the EMA already averages within a run, this across saves)."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Mapping

import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext, seeded_copy
from engine.members.base import Member
from engine.store.checkpoints import load_member_state


class Soup(Fusion):
    name = "soup"
    title = "Weight soup"
    params = (
        Param("member", "vae", member_choice="sample", help="whose weights are averaged"),
        Param("checkpoints", 3, 2, 20, help="how many of the latest checkpoints to average"),
    )

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        name = params.get("member", "vae")
        if name not in members or not members[name].can_sample:
            raise UserError(f"soup member {name!r} is not a sampling member of this run")
        paths = (context.checkpoints if context else [])[-int(params.get("checkpoints", 3)):]
        if len(paths) < 2:
            raise UserError("soup needs at least two checkpoints of the run to average")
        member = members[name]
        with averaged_weights(member, [load_member_state(p, name) for p in paths]):
            # the class's own sample(): a SampleBank on the instance would return unsouped images
            images = type(member).sample(member, n, seeded_copy(generator), label=label)
        return FusedBatch(images, (f"soup({name}×{len(paths)})",) * n, settled={"checkpoints": len(paths)})


@contextmanager
def averaged_weights(member: Member, states: list[dict[str, Any]]):
    """Temporarily give ``member`` the mean of the checkpoints' weights; restore them after."""
    saved = {net_name: copy.deepcopy(net.state_dict()) for net_name, net in member.networks().items()}
    try:
        for net_name, net in member.networks().items():
            averaged = {}
            for key, value in net.state_dict().items():
                stack = [state["nets"][net_name][key] for state in states]
                averaged[key] = (torch.stack([t.double() for t in stack]).mean(0).to(value.dtype)
                                 if value.is_floating_point() else stack[-1])
            net.load_state_dict(averaged)
        yield member
    finally:
        for net_name, net in member.networks().items():
            net.load_state_dict(saved[net_name])
