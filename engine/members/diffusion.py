"""A small UNet trained by flow matching (rectified flow), sampled with a deterministic Euler ODE.

Convention: x_t = (1 - t) x_0 + t ε with t ∈ [0, 1]; the network predicts the velocity ε - x_0;
sampling integrates from pure noise at t = 1 to the data at t = 0. ``refine`` starts part-way,
at t = strength, from another member's image noised to that level (SDEdit).
"""
from __future__ import annotations

import copy
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.accel import CPU_AUTO, AutoPaths
from engine.config import DataConfig, OptimConfig, Param
from engine.data.dataset import Batch
from engine.errors import UserError
from engine.members.alpha import ALPHA_PARAM
from engine.members.base import Loss, Member
from engine.members.classes import CLASSES_PARAM
from engine.members.ema import EMA_HALF_LIFE, update_ema
from engine.members.latents import in_chunks

LABEL_DROPOUT = 0.1  # share of training images shown without their class: the unconditional model CFG needs
# classifier-free guidance when a class is asked for: on Fashion-MNIST the evaluation judge called 94 %
# of the diffusion's asked-for sneakers sneakers at 2, 75 % at 1 (docs/quality.md § Classes)
CLASS_GUIDANCE = 2.0


def critic_direction(critic, images: torch.Tensor) -> torch.Tensor:
    """The critic's gradient at ``images`` (clamped to the pixel range), scaled to unit RMS per image."""
    with torch.enable_grad():
        probe = images.detach().clamp(-1, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(probe).sum(), probe)
    rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
    return grad / rms.view(-1, *([1] * (grad.dim() - 1)))


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32, as CUDA's autocast does: under the CPU's bf16 autocast it would run
    in bf16, 4× slower than in fp32 on this project's CPU (and less precise). Without autocast the
    input is fp32 already and nothing changes; the weights and state-dict keys are GroupNorm's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, tdim: int):
        super().__init__()
        self.norm1 = GroupNorm32(min(8, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.time = nn.Linear(tdim, cout)
        self.norm2 = GroupNorm32(min(8, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """Two resolution drops (size → size/2 → size/4), one residual block per level, skip joins.
    ``classes`` > 0: a learnt embedding of the class (or of "no class", index ``classes``) joins the
    time embedding."""

    def __init__(self, channels: int, width: int, classes: int = 0):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 2 * width
        self.tdim = 4 * width
        self.temb = nn.Sequential(nn.Linear(width, self.tdim), nn.SiLU(), nn.Linear(self.tdim, self.tdim))
        self.width = width
        self.inp = nn.Conv2d(channels, w1, 3, 1, 1)
        self.down1 = ResBlock(w1, w1, self.tdim)
        self.pool1 = nn.Conv2d(w1, w2, 3, 2, 1)
        self.down2 = ResBlock(w2, w2, self.tdim)
        self.pool2 = nn.Conv2d(w2, w3, 3, 2, 1)
        self.mid = ResBlock(w3, w3, self.tdim)
        self.up2 = ResBlock(w3 + w2, w2, self.tdim)
        self.up1 = ResBlock(w2 + w1, w1, self.tdim)
        self.out = nn.Sequential(GroupNorm32(min(8, w1), w1), nn.SiLU(), nn.Conv2d(w1, channels, 3, 1, 1))
        if classes:
            self.label = nn.Embedding(classes + 1, self.tdim)
            nn.init.zeros_(self.label.weight)

    def forward(self, x, t, labels=None):
        temb = self.temb(time_embedding(t, self.width))
        if labels is not None:
            temb = temb + self.label(labels).to(temb.dtype)
        h1 = self.down1(self.inp(x), temb)
        h2 = self.down2(self.pool1(h1), temb)
        h = self.mid(self.pool2(h2), temb)
        h = F.interpolate(h, size=h2.shape[-2:], mode="nearest")
        h = self.up2(torch.cat([h, h2], 1), temb)
        h = F.interpolate(h, size=h1.shape[-2:], mode="nearest")
        h = self.up1(torch.cat([h, h1], 1), temb)
        return self.out(h)


class Diffusion(Member):
    kind = "diffusion"
    title = "Diffusion (flow matching)"
    params = (
        Param("width", "auto", 8, 256, auto=int, help="channels of the finest UNet level; auto: sized for the image size"),
        Param("sample_steps", 20, 1, 1000, help="Euler steps when sampling (FD against steps: docs/quality.md)"),
        Param("class_guidance", CLASS_GUIDANCE, 0.0, 20.0,
              help="with classes, when one class is asked for: classifier-free guidance scale (1: the "
                   "class-conditional model alone; more: images more surely of that class, at twice the "
                   "sampling cost); any class samples without it"),
        Param("ema_half_life", EMA_HALF_LIFE, 0, 10_000_000,
              help="EMA of the UNet used for sampling: its half-life in training images (0: none)"),
        CLASSES_PARAM,
        ALPHA_PARAM,
    )
    default_pace = 0.5  # optimizer steps per ensemble step: measured (docs/quality.md, § Pace)
    default_optim = OptimConfig(name="adam", lr=5e-4, betas=(0.9, 0.999))
    can_refine = True
    can_be_guided = True
    can_premultiply = True  # learns, and denoises, premultiplied RGBA (engine/members/alpha.py)
    # its EMA's half-life grows to 10 % of the images seen (the members' default is 5 %): on
    # Fashion-MNIST FD 91.1 against 97.6 at 5 % and 92.9 with the old per-step schedule (docs/quality.md)
    ema_rampup = 0.10
    can_vary = "image"   # any image, its own or another member's: re-noised part-way, sampled again
    can_interpolate = True
    # the class's embedding joins the time's; trained with the class dropped for LABEL_DROPOUT of the
    # images, so one UNet is both conditional and not (classifier-free guidance, Ho & Salimans 2022)
    can_condition = True
    tiny_params = {"width": 8, "sample_steps": 4}
    sized = {"width": 32}  # measured at 28 and 32 px (docs/quality.md); engine/members/sizing.py
    # channels_last measured faster for the UNet on the H100 (docs/performance.md)
    fast_defaults = {"cpu": CPU_AUTO, "cuda": AutoPaths(fused=True, graphs_from=2200, channels_last=True)}

    @classmethod
    def check_data(cls, data: DataConfig) -> None:
        if data.size % 4:
            raise UserError(f"the diffusion member needs an image size divisible by 4, got {data.size}")

    def build(self) -> None:
        channels = self.image_shape[0]
        # channels_last where FastPaths says (the base converts)
        self.net = UNet(channels, self.p["width"], self.num_classes if self.conditioned else 0)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)

    def networks(self) -> dict[str, nn.Module]:
        return self.with_classes({"unet": self.net, "unet_ema": self.ema})

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"unet": self.net}

    def losses(self, batch: Batch) -> Iterator[Loss]:
        x0 = self.to_own_alpha(batch.images)
        n = x0.shape[0]
        noise = torch.randn(x0.shape, generator=self.generator, device=self.device)
        # logit-normal t concentrates training where the velocity is hardest to predict
        t = torch.sigmoid(torch.randn(n, generator=self.generator, device=self.device))
        labels = self.training_labels(batch)
        if labels is not None:  # some images without their class: the unconditional model
            dropped = torch.rand(n, generator=self.generator, device=self.device) < LABEL_DROPOUT
            labels = torch.where(dropped, torch.full_like(labels, self.num_classes), labels)
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * noise
        with self.autocast():
            loss = F.mse_loss(self.net(xt, t, labels).float(), noise - x0)
        yield Loss("unet", loss, {"loss": loss})

    def after_step(self) -> None:
        update_ema(self.ema, self.net, self.ema_beta(self.p["ema_half_life"]))

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None,
                  scale: float = 1.0) -> torch.Tensor:
        """The EMA UNet's velocity at time ``t``; with classes, towards each image's class (``labels``;
        "no class" entries get the unconditional velocity), guided by ``scale`` (classifier-free)."""
        t = t.expand(x.shape[0])
        if labels is None:
            return self.ema(x, t)
        conditional = self.ema(x, t, labels)
        if scale == 1.0:
            return conditional
        unconditional = self.ema(x, t, torch.full_like(labels, self.num_classes))
        return unconditional + scale * (conditional - unconditional)

    def _guidance(self, label: int | None) -> float:
        """The classifier-free guidance scale: the member's ``class_guidance`` when a class is asked
        for, none (1) for any class, whose images keep the conditional model's variety."""
        return 1.0 if label is None else float(self.p.get("class_guidance", CLASS_GUIDANCE))

    def _no_class(self, n: int) -> torch.Tensor | None:
        """Labels meaning "no class" (for images of unknown class), or None for a UNet without classes."""
        return torch.full((n,), self.num_classes, dtype=torch.long, device=self.device) if self.conditioned else None

    @torch.no_grad()
    def _integrate(self, x: torch.Tensor, t_start: float, steps: int, labels: torch.Tensor | None = None,
                   scale: float = 1.0) -> torch.Tensor:
        times = torch.linspace(t_start, 0.0, steps + 1, device=self.device)
        for t_now, t_next in zip(times[:-1], times[1:]):
            v = self._velocity(x, t_now, labels, scale)
            x = x + (t_next - t_now) * v
        return x.clamp(-1, 1)

    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.image_shape)

    @torch.no_grad()
    def from_latents(self, latents: torch.Tensor, label: int | None = None, steps: int | None = None) -> torch.Tensor:
        """The ODE from initial noise ``latents`` (t = 1) to images (t = 0)."""
        steps = steps or self.p["sample_steps"]
        labels = self.labels_for(latents, label)
        return self.to_straight_alpha(torch.cat([
            self._integrate(latents[part], 1.0, steps, None if labels is None else labels[part], self._guidance(label))
            for part in in_chunks(len(latents), 256)]))

    def sample(self, n: int, generator: torch.Generator, label: int | None = None,
               steps: int | None = None) -> torch.Tensor:
        return self.from_latents(self.latents(n, generator), label, steps)

    def sample_guided(self, n, generator, critic, strength, steps=None, label=None) -> torch.Tensor:
        """The ODE steered by a critic (the guide fusion). At each Euler step the UNet's velocity
        splits the state into its predicted image x̂₀ = x − t·v and noise ε̂ = x + (1 − t)·v; x̂₀ moves
        along the critic's gradient (normalised to unit RMS per image) by ``strength`` × the step's
        stretch of time, and the state is rebuilt at the next time from the moved x̂₀ and the same ε̂.
        Without the move this is the plain Euler step, so ``strength`` is, at most, the RMS distance
        (in [-1, 1] pixel units) the critic moves an image over the whole path; 0 is ``sample``
        exactly. Like discriminator guidance (Kim et al. 2022), but with a critic on clean images
        (the DCGAN's D, the judge) applied to x̂₀ instead of one trained on noised images."""
        steps = steps or self.p["sample_steps"]
        latents = self.latents(n, generator)
        if strength == 0:
            return self.from_latents(latents, label, steps)
        labels = self.labels_for(latents, label)
        return self.to_straight_alpha(torch.cat([
            self._integrate_guided(latents[part], steps, critic, strength, None if labels is None else labels[part],
                                   self._guidance(label))
            for part in in_chunks(len(latents), 256)]))

    def _integrate_guided(self, x: torch.Tensor, steps: int, critic, strength: float,
                          labels: torch.Tensor | None, scale: float = 1.0) -> torch.Tensor:
        times = torch.linspace(1.0, 0.0, steps + 1, device=self.device)
        for t_now, t_next in zip(times[:-1], times[1:]):
            with torch.no_grad():
                v = self._velocity(x, t_now, labels, scale)
                clean, noise = x - t_now * v, x + (1 - t_now) * v
            # the critic judges, and moves, straight-alpha images: the move in the member's own alpha
            # would be divided by opacity and pile up where nothing shows
            seen = self.to_straight_alpha(clean)
            clean = self.to_own_alpha(seen + strength * (t_now - t_next) * critic_direction(critic, seen))
            x = (1 - t_next) * clean + t_next * noise
        return x.clamp(-1, 1)

    def variations(self, image, latent, n, strength, generator, label=None) -> torch.Tensor:
        """The image re-noised to t = strength and sampled again (``refine``), n times with fresh
        noise; Euler steps in proportion to the stretch of the ODE left to run."""
        if not 0.0 <= strength <= 1.0:
            raise UserError(f"--strength must be between 0 and 1, got {strength}")
        copies = image.to(self.device)[None].expand(n, *image.shape).contiguous()
        if strength == 0.0:
            return copies.clamp(-1, 1)
        return self.refine(copies, strength, max(1, round(strength * self.p["sample_steps"])), generator, label)

    @torch.no_grad()
    def refine(self, images: torch.Tensor, strength: float, steps: int, generator: torch.Generator,
               label: int | None = None) -> torch.Tensor:
        """Noise ``images`` to t = strength, then denoise them with ``steps`` Euler steps (towards class
        ``label``; with classes but none asked, unconditionally: the images' classes are not known)."""
        if not 0.0 < strength <= 1.0:
            raise UserError(f"refine strength must be in (0, 1], got {strength}")
        noise = self.noise(tuple(images.shape), generator)
        x = (1 - strength) * self.to_own_alpha(images.to(self.device)) + strength * noise
        labels = self._no_class(len(x)) if label is None else self.labels_for(x, label)
        return self.to_straight_alpha(torch.cat([
            self._integrate(x[part], strength, max(1, steps), None if labels is None else labels[part],
                            self._guidance(label))
            for part in in_chunks(len(x), 256)]))
