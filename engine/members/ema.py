"""Exponential moving averages of a member's weights, with half-lives counted in images, not steps."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

EMA_RAMPUP = 0.05  # an EMA's half-life is at most this share of the images seen so far
EMA_HALF_LIFE = 10_000  # images: the members' default (StyleGAN2-ADA's is 10k–20k)


def half_life_of(decay: Any, batch: int) -> Any:
    """The half-life in images of a per-step EMA decay (the retired ``ema_decay``) at ``batch``."""
    if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0 <= decay < 1:
        return decay  # left for validation to refuse with its own message
    return 0 if decay == 0 else round(batch * math.log(0.5) / math.log(decay))


def ema_beta(step: int, half_life: float, batch: int, rampup: float = EMA_RAMPUP) -> float:
    """The EMA decay at ``step`` for a half-life of ``half_life`` images at ``batch`` images a step:
    0.5 ** (batch / half), the half-life ramped up as min(half_life, 5 % of the images seen) as in
    StyleGAN2-ADA (Karras et al. 2020), so a short run's average is not dominated by its first, poor
    weights (``rampup``: the member's ``ema_rampup``). ``half_life`` 0: no averaging (the EMA copy is
    the network)."""
    half = min(half_life, rampup * (step + 1) * batch)
    return 0.5 ** (batch / half) if half > 0 else 0.0


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, beta: float | torch.Tensor) -> None:
    """EMA of the weights, ema ← beta·ema + (1 − beta)·net (``beta`` from ``ema_beta``: with a
    warm-up, so a short run is not dominated by the initial weights).

    A tensor ``beta`` (a step graph's) stays on the device: lerp would read it on the host.
    """
    # multi-tensor kernels: a handful of launches instead of one per tensor (matters on a GPU)
    ema_params, net_params = list(ema.parameters()), list(net.parameters())
    if isinstance(beta, torch.Tensor):
        torch._foreach_mul_(ema_params, beta)
        torch._foreach_add_(ema_params, torch._foreach_mul(net_params, 1.0 - beta))
    else:
        torch._foreach_lerp_(ema_params, net_params, 1.0 - beta)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(net.buffers()))
