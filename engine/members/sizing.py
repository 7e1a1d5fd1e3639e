"""Members sized for the run: a width set to "auto" follows the image size and channels.

The members' widths were measured at 28 and 32 px (Fashion-MNIST, the emoji benchmark: docs/quality.md),
where they are the defaults. A larger image costs more per training image at the same width (each
halving stage and each level's pixels), so "auto" settles to the widest multiple of ``WIDTH_STEP``, no
wider than the measured default, whose training step costs at most ``GROWTH`` times what the
default's costs at ``REFERENCE_SIZE`` px with the run's channels. The cost is counted, not guessed:
the floating-point operations of one training step of the member itself (torch's flop counter), so a
new member is sized by the same rule without a formula of its own. A default run at 64 px therefore
takes at most about ``GROWTH`` times as long per step as one at 32 px (measured:
``python main.py bench sizing``), instead of the 4–5 times the 32-px widths would cost.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.config import MemberConfig
from engine.data.dataset import Batch

REFERENCE_SIZE = 32   # the largest size the default widths were measured at
GROWTH = 2.0          # a larger image may cost at most this many times the reference's step
WIDTH_STEP = 8        # auto widths are multiples of this
PROBE_BATCH = 2       # images in the counted training step


def settle_sizes(cls, params: Mapping[str, Any], size: int, channels: int) -> dict[str, Any]:
    """``params`` with each of ``cls.sized``'s parameters that is "auto" settled for ``size`` px
    and ``channels`` (the others as given)."""
    settled = dict(params)
    for name, default in cls.sized.items():
        if settled.get(name) == "auto":
            settled[name] = auto_width(cls, name, default, size, channels, _fixed(params))
    return settled


def auto_width(cls, name: str, default: int, size: int, channels: int, fixed: tuple) -> int:
    if size <= REFERENCE_SIZE:
        return default
    budget = GROWTH * step_flops(cls, fixed, ((name, default),), REFERENCE_SIZE, channels)
    width = default
    while width > WIDTH_STEP and step_flops(cls, fixed, ((name, width),), size, channels) > budget:
        width -= WIDTH_STEP
    return width


def _fixed(params: Mapping[str, Any]) -> tuple:
    """The parameters that are not "auto", hashable (the cost depends on them, e.g. the latent size)."""
    return tuple(sorted((k, v) for k, v in params.items() if v != "auto" and not isinstance(v, dict)))


@lru_cache(maxsize=256)
def step_flops(cls, fixed: tuple, sizes: tuple, size: int, channels: int) -> int:
    """Floating-point operations of one training step (forward and backward, every loss term) of a
    member of ``cls`` at ``size`` px, ``channels``, with ``fixed`` parameters and ``sizes`` set."""
    params = {**{p.name: p.default for p in cls.params}, **dict(fixed), **dict(sizes)}
    params = {k: (cls.sized[k] if v == "auto" and k in cls.sized else v) for k, v in params.items()}
    config = MemberConfig(kind=cls.kind, optim=cls.default_optim, batch_size=PROBE_BATCH, params=params)
    with torch.random.fork_rng(devices=[]):
        member = cls(config, (channels, size, size), 0, torch.device("cpu"), 0)
        images = torch.rand(PROBE_BATCH, channels, size, size) * 2 - 1
        counter = FlopCounterMode(display=False)
        with counter:
            member.train_step(Batch(images, None))
    return int(counter.get_total_flops())

