"""Convolutional VAE: Gaussian latent, Bernoulli-style pixel likelihood, β-weighted KL."""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.accel import CPU_AUTO, AutoPaths
from engine.config import OptimConfig, Param
from engine.data.dataset import Batch
from engine.members.base import Loss, Member, in_chunks
from engine.members.nets import Decoder, Encoder


class VAE(Member):
    kind = "vae"
    title = "VAE"
    can_score = True
    can_vary = "latent"
    can_interpolate = True
    params = (
        Param("latent", 16, 2, 1024, help="size of the Gaussian latent"),
        Param("width", 32, 4, 512, help="channels of the finest layer"),
        Param("beta", 1.0, 0.0, 100.0, help="weight of the KL term (β-VAE)"),
    )
    default_optim = OptimConfig(name="adam", lr=1e-3, betas=(0.9, 0.999))
    tiny_params = {"width": 8, "latent": 8}
    fast_defaults = {"cpu": CPU_AUTO, "cuda": AutoPaths(fused=True, graphs_from=5100)}  # docs/performance.md

    def build(self) -> None:
        channels, size, _ = self.image_shape
        p = self.p
        self.net = nn.ModuleDict({
            "encoder": Encoder(channels, size, p["width"], 2 * p["latent"]),
            "decoder": Decoder(p["latent"], channels, size, p["width"], norm=False),
        })
        self.encoder, self.decoder = self.net["encoder"], self.net["decoder"]

    def networks(self) -> dict[str, nn.Module]:
        return {"vae": self.net}

    def compiled_modules(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]  # train_step calls these, not the ModuleDict

    def _terms(self, images: torch.Tensor, z_noise: torch.Tensor | None):
        """Per-image reconstruction (nats) and KL; posterior mean when ``z_noise`` is None."""
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        logvar = logvar.clamp(-20, 10)
        z = mu if z_noise is None else mu + torch.exp(0.5 * logvar) * z_noise
        logits = self.decoder(z)
        target = (images + 1) / 2
        recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return recon, kl

    def losses(self, batch: Batch) -> Iterator[Loss]:
        images = batch.images
        eps = torch.randn(images.shape[0], self.p["latent"], generator=self.generator, device=self.device)
        with self.autocast():
            recon, kl = self._terms(images, eps)
            loss = (recon.float() + self.p["beta"] * kl.float()).mean()
        yield Loss("vae", loss, {"loss": loss, "recon": recon.mean(), "kl": kl.mean()})

    def latent_shape(self) -> tuple[int, ...]:
        return (self.p["latent"],)

    @torch.no_grad()
    def from_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sigmoid(self.decoder(latents[part])) * 2 - 1
                          for part in in_chunks(len(latents), 512)])

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.from_latents(self.latents(n, generator))

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """The ELBO (at the posterior mean): higher means the VAE finds the image more likely."""
        out = []
        for part in in_chunks(len(images), 512):
            recon, kl = self._terms(images[part], None)
            out.append(-(recon + kl))
        return torch.cat(out)
