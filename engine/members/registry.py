"""The one place where member kinds are registered, and where a kind is looked up by name.

A new member is one file in this folder and one entry in ``MEMBERS``: everything else (config
validation, fast paths, fusions, evaluation, the self-test, the benchmarks, the GUI's forms) asks
the class (docs/architecture.md, "Adding a member").
"""
from __future__ import annotations

from typing import Any, Mapping

from engine.config import DataConfig, MemberConfig, RunConfig, member_from_dict
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


CAPABILITIES = {
    "sample": lambda cls: cls.can_sample,
    "score": lambda cls: cls.can_score,
    "refine": lambda cls: cls.can_refine,
    "draft": lambda cls: cls.can_sample and not cls.can_refine,  # what a refiner can start from
    "guide": lambda cls: cls.can_guide,  # a critic whose gradient steers a guided sampler
    "guided": lambda cls: cls.can_be_guided,
}


def kinds_that(capability: str) -> list[str]:
    """Registered kinds with a capability (a key of CAPABILITIES), in registry order."""
    return [kind for kind, cls in MEMBERS.items() if CAPABILITIES[capability](cls)]


def kinds_text(capability: str) -> str:
    """"dcgan, vae or judge": the registered kinds with a capability, for a message."""
    kinds = kinds_that(capability)
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def run_config(raw: Mapping[str, Any]) -> RunConfig:
    """A RunConfig from a plain dict (TOML, JSON, the GUI), each member checked against its kind."""
    return RunConfig.from_dict(raw, member_class)


def member_config(raw: Mapping[str, Any], data: DataConfig) -> MemberConfig:
    """One member's settings, checked against the parameters its kind declares."""
    return member_from_dict(raw, data, member_class)


def require_a_generator(config: RunConfig) -> None:
    """A run that an artist starts needs a member that makes images (the benchmarks and tests
    may train a judge alone)."""
    if not any(member_class(kind).can_sample for kind in config.kinds()):
        others = [kind for kind in MEMBERS if kind not in kinds_that("sample")]
        raise UserError(f"a run needs a member that makes images ({', '.join(kinds_that('sample'))})"
                        + (f": {', '.join(others)} only score{'s' if len(others) == 1 else ''} them" if others else ""))
