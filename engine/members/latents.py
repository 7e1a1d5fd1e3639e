"""Paths through a member's Gaussian latent space (interpolation, variations' neighbours), and the
chunks a large draw is made in."""
from __future__ import annotations

import math

import torch

from engine.errors import UserError


def slerp_path(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` latents on the great circle from ``a`` to ``b`` (spherical interpolation: every point
    keeps the norm a Gaussian latent has, where a straight line would pass through its unlikely
    centre); the first is ``a`` and the last ``b``, exactly."""
    if steps < 2:
        raise UserError(f"an interpolation needs at least 2 steps, got {steps}")
    flat_a, flat_b = a.flatten().double(), b.flatten().double()
    cos = torch.dot(flat_a, flat_b) / (flat_a.norm() * flat_b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64, device=a.device)
    if float(torch.sin(omega)) < 1e-6:  # (nearly) parallel: a straight line is the same path
        wa, wb = 1 - t, t
    else:
        wa, wb = torch.sin((1 - t) * omega) / torch.sin(omega), torch.sin(t * omega) / torch.sin(omega)
    path = (wa[:, None] * flat_a + wb[:, None] * flat_b).to(a.dtype).reshape(steps, *a.shape)
    path[0], path[-1] = a, b
    return path


def latent_neighbours(latent: torch.Tensor, noise: torch.Tensor, strength: float) -> torch.Tensor:
    """cos(s·π/2)·z + sin(s·π/2)·ε for each row ε of ``noise``: a Gaussian latent stays one (unit
    variance), strength 0 gives ``latent`` itself exactly and 1 fresh latents."""
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {strength}")
    angle = strength * math.pi / 2
    return math.cos(angle) * latent[None] + math.sin(angle) * noise


def in_chunks(n: int, chunk: int):
    for start in range(0, n, chunk):
        yield slice(start, min(n, start + chunk))
