"""A toy generator, the proof that a member is one file plus one registry line.

One linear layer maps noise to pixels; it learns to match the data's per-pixel mean and spread, and
scores an image by how close it is to its own mean image. Nothing outside this file knows it: the
test that registers it (``MEMBERS["toy"] = Toy``) checks that it trains, samples, fuses, evaluates,
passes the self-test and gets generated controls on the members page.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from engine.config import OptimConfig, Param
from engine.data.dataset import Batch
from engine.members.base import Loss, Member


class Toy(Member):
    kind = "toy"
    title = "Toy (linear)"
    can_score = True
    params = (
        Param("latent", 8, 1, 256, help="size of the noise vector"),
        Param("spread", 1.0, 0.0, 10.0, help="weight of matching each pixel's spread (beside its mean)"),
    )
    default_optim = OptimConfig(name="adam", lr=1e-2, betas=(0.9, 0.999))
    tiny_params = {"latent": 4}

    def build(self) -> None:
        channels, height, width = self.image_shape
        self.net = nn.Linear(self.p["latent"], channels * height * width)

    def networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def _images(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(z).float()).view(-1, *self.image_shape)

    def losses(self, batch: Batch) -> Iterator[Loss]:
        real = batch.images.float()
        z = torch.randn(real.shape[0], self.p["latent"], generator=self.generator, device=self.device)
        with self.autocast():
            fake = self._images(z)
        loss = ((fake.mean(0) - real.mean(0)).pow(2).mean()
                + self.p["spread"] * (fake.std(0) - real.std(0)).pow(2).mean())
        yield Loss("net", loss, {"loss": loss})

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        return self._images(self.noise((n, self.p["latent"]), generator))

    @torch.no_grad()
    def score(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """Closeness to the toy's own mean image: higher is more like what it makes."""
        mean = self._images(torch.zeros(1, self.p["latent"], device=self.device))
        return -(images.to(self.device).float() - mean).flatten(1).pow(2).mean(1)
