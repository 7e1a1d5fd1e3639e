"""Differentiable augmentation for a discriminator on small data (DiffAugment with ADA's adaptive p).

DiffAugment (Zhao et al. 2020) shows D only augmented images, real and fake alike, with operations a
gradient passes through back to G: colour (brightness, saturation, contrast), translation (⅛ of the
size, zero padded) and cutout (a square of half the size). ADA (Karras et al. 2020) applies each
operation to each image with a probability p that it steers from D's overfitting signal
r = E[sign(D(real))]: p rises while r is above its target (D too sure of the training images) and
falls below it. Both keep a GAN from collapsing on a few hundred or thousand images.

Written here rather than taken from kornia (kornia 0.9.0 + kornia_rs 0.2.0 are 7.3 MB of wheels for
five operations of a few lines each); the operations follow DiffAugment's reference code. Colour
changes touch RGB only: an RGBA image keeps its alpha. ``p`` and the running signal are buffers of
an ``nn.Module``, so they travel with a member's checkpoints and rollbacks and stay on the device
(no host read per step).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TRANSLATION = 0.125
CUTOUT = 0.5
AUGMENT_BELOW = 10_000  # "auto" augments on folders smaller than this (the DCGAN's D, the judge)
JUDGE_P = 0.5  # the judge's fixed probability per image and operation (it has no overfitting signal to steer by)


class AdaptiveAugment(nn.Module):
    """``forward(x, generator)``: x augmented with probability ``p`` per image and operation, p
    steered by ``observe``. Not ``enabled``: images pass unchanged and no random number is drawn."""

    def __init__(self, target: float = 0.6, images_to_one: float = 20_000.0, enabled: bool = True,
                 p: float = 0.0):
        super().__init__()
        self.target = target
        self.images_to_one = images_to_one  # images for p to climb from 0 to 1 at the fastest
        self.enabled = enabled
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("signal", torch.tensor(0.0))  # r = E[sign(D(real))], smoothed

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if not self.enabled:
            return x
        n = x.shape[0]
        for operation in (brightness, saturation, contrast, translation, cutout):
            augmented = operation(x, generator)
            keep = (torch.rand(n, 1, 1, 1, generator=generator, device=x.device) < self.p).to(x.dtype)
            x = augmented * keep + x * (1 - keep)  # per image: augmented or not; gradients flow through both
        return x

    @torch.no_grad()
    def observe(self, real_logits: torch.Tensor) -> None:
        """Steer p from D's logits on one batch of real images, by at most batch / images_to_one."""
        if not self.enabled:
            return
        self.signal.lerp_(torch.sign(real_logits.float()).mean(), 0.1)
        step = real_logits.numel() / self.images_to_one
        self.p.add_(torch.sign(self.signal - self.target) * step).clamp_(0.0, 1.0)


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    return (x[:, :3], x[:, 3:]) if x.shape[1] == 4 else (x, None)


def _join(colour: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    return colour if alpha is None else torch.cat([colour, alpha], dim=1)


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device).to(x.dtype)


def brightness(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    colour, alpha = _split(x)
    return _join(colour + (_uniform(x, generator) - 0.5), alpha)


def saturation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    colour, alpha = _split(x)
    mean = colour.mean(dim=1, keepdim=True)
    return _join((colour - mean) * (_uniform(x, generator) * 2) + mean, alpha)


def contrast(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    colour, alpha = _split(x)
    mean = colour.mean(dim=(1, 2, 3), keepdim=True)
    return _join((colour - mean) * (_uniform(x, generator) + 0.5) + mean, alpha)


def translation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * TRANSLATION + 0.5), int(w * TRANSLATION + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator, device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator, device=x.device)
    batch, rows, cols = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                       torch.arange(w, device=x.device), indexing="ij")
    rows = torch.clamp(rows + dy + 1, 0, h + 1)
    cols = torch.clamp(cols + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator, device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator, device=x.device)
    batch, rows, cols = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                       torch.arange(cw, device=x.device), indexing="ij")
    rows = torch.clamp(rows + oy - ch // 2, 0, h - 1)
    cols = torch.clamp(cols + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)
