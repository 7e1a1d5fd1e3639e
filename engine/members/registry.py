"""The one place where member kinds are registered."""
from __future__ import annotations

from engine.errors import UserError
from engine.members.base import Member
from engine.members.dcgan import DCGAN
from engine.members.diffusion import Diffusion
from engine.members.judge import Judge
from engine.members.vae import VAE

MEMBERS: dict[str, type[Member]] = {cls.kind: cls for cls in (DCGAN, VAE, Diffusion, Judge)}


def member_class(kind: str) -> type[Member]:
    try:
        return MEMBERS[kind]
    except KeyError:
        raise UserError(f"unknown member {kind!r}; choose from {', '.join(MEMBERS)}") from None
