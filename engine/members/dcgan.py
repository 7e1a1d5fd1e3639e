"""DCGAN: G and D scaled to the run's size, non-saturating loss, an EMA copy of G for sampling; on
small data, D sees every image through adaptive differentiable augmentation (engine/members/augment.py)."""
from __future__ import annotations

import copy
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.accel import CPU_AUTO, AutoPaths
from engine.config import OptimConfig, Param
from engine.data.dataset import Batch
from engine.members.alpha import ALPHA_PARAM
from engine.members.augment import AUGMENT_BELOW, AdaptiveAugment
from engine.members.base import Loss, Member
from engine.members.classes import CLASSES_PARAM
from engine.members.ema import EMA_HALF_LIFE, update_ema
from engine.members.latents import in_chunks
from engine.members.nets import ClassInput, Decoder, Encoder


NEW_RUN_DEFAULTS = {"d_norm": "none", "mbstd": "on"}  # what "auto" settles to in a new run (measured: docs/quality.md)
STANDING_BATCHES, STANDING_SIZE, STANDING_SEED = 4, 256, 20_240_601  # G_ema's batch-norm statistics


class DCGAN(Member):
    kind = "dcgan"
    title = "DCGAN"
    one_pass = True
    can_score = True
    can_guide = True
    can_vary = "latent"
    can_interpolate = True
    can_premultiply = True  # G draws, and D judges, premultiplied RGBA (engine/members/alpha.py)
    can_condition = True  # G gets the class's embedding beside z, D a projection of it (Miyato & Koyama 2018)
    params = (
        Param("latent", 64, 2, 1024, help="size of the noise vector z"),
        Param("width", "auto", 4, 512, auto=int,
              help="channels of the finest layer (coarser layers double); auto: sized for the image size"),
        Param("ema_half_life", EMA_HALF_LIFE, 0, 10_000_000,
              help="EMA of G used for sampling: its half-life in training images (0: none)"),
        Param("augment", "auto", choices=("auto", "adaptive", "off"),
              help="D sees real and fake images augmented (colour, translation, cutout) with a probability "
                   "steered against overfitting; auto: on below {:,} training images".format(AUGMENT_BELOW)),
        Param("augment_target", 0.6, 0.0, 1.0, help="the overfitting signal E[sign(D(real))] augmentation steers to"),
        Param("d_norm", "auto", choices=("auto", "spectral", "none"),
              help="normalisation of D's layers: spectral norm keeps D smooth, so G keeps a useful gradient"),
        Param("mbstd", "auto", choices=("auto", "on", "off"),
              help="D sees the spread of features across a group of images: collapse is penalised"),
        CLASSES_PARAM,
        ALPHA_PARAM,
    )
    default_pace = 2.0  # optimizer steps per ensemble step: measured (docs/quality.md, § Pace)
    default_optim = OptimConfig(name="adam", lr=2e-4, betas=(0.5, 0.999))
    tiny_params = {"width": 8, "latent": 16}
    sized = {"width": 32}  # measured at 28 and 32 px (docs/quality.md); engine/members/sizing.py
    # CUDA graphs (compile "reduce-overhead") made its steps faster on the H100 but cost seconds of
    # compiling first: "auto" uses them from the measured break-even on (docs/performance.md)
    fast_defaults = {"cpu": CPU_AUTO, "cuda": AutoPaths(fused=True, graphs_from=6000)}

    def build(self) -> None:
        channels, size, _ = self.image_shape
        p = self.p
        classes = self.num_classes if self.conditioned else 0
        body = nn.Sequential(Decoder(p["latent"] * (2 if classes else 1), channels, size, p["width"], norm=True),
                             nn.Tanh())
        self.G = LabelledGenerator(body, ClassInput(classes, p["latent"])) if classes else body
        # "auto" left in a run is one made before these existed: its D had neither
        self.D = Encoder(channels, size, p["width"], 1, spectral=p.get("d_norm", "auto") == "spectral",
                         mbstd=p.get("mbstd", "auto") == "on", classes=classes, projection=True)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self._standing_for: tuple[int, int] | None = None  # (step, state_version) G_ema's statistics are for
        # "auto" left in a run is one made before augmentation existed: it trained without
        self.augment = AdaptiveAugment(p.get("augment_target", 0.6), enabled=p.get("augment", "off") == "adaptive")

    @classmethod
    def settle_params(cls, params, images: int, data=None, num_classes: int = 0) -> dict:
        settled = dict(params)
        if settled.get("augment", "auto") == "auto":
            settled["augment"] = "adaptive" if images < AUGMENT_BELOW else "off"
        for key, chosen in NEW_RUN_DEFAULTS.items():
            if settled.get(key, "auto") == "auto":
                settled[key] = chosen
        return super().settle_params(settled, images, data, num_classes)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        nets = {**nets, "augment": self.augment} if self.augment.enabled else nets  # p travels with checkpoints
        return self.with_classes(nets)

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def losses(self, batch: Batch) -> Iterator[Loss]:
        real = self.to_own_alpha(batch.images)
        labels = self.training_labels(batch)  # a fake gets the class of the real image beside it
        z = torch.randn(real.shape[0], self.p["latent"], generator=self.generator, device=self.device)
        seen = lambda images: self.augment(images, self.generator)  # noqa: E731 - D's view: as is, or augmented
        G = (lambda z: self.G(z, labels)) if labels is not None else self.G  # noqa: E731
        with self.autocast():
            fake = G(z)
            real_logits = self.D(seen(real), labels)
            loss_d = F.softplus(-real_logits).mean() + F.softplus(self.D(seen(fake.detach()), labels)).mean()
        self.augment.observe(real_logits.detach())
        logged = {"loss_d": loss_d, **({"augment_p": self.augment.p.clone()} if self.augment.enabled else {})}
        yield Loss("D", loss_d, logged)

        with self.autocast():
            loss_g = F.softplus(-self.D(seen(fake), labels)).mean()  # non-saturating G loss, against the stepped D
        yield Loss("G", loss_g, {"loss_g": loss_g})

    def after_step(self) -> None:
        update_ema(self.G_ema, self.G, self.ema_beta(self.p["ema_half_life"]))

    def latent_shape(self) -> tuple[int, ...]:
        return (self.p["latent"],)

    @torch.no_grad()
    def from_latents(self, latents: torch.Tensor, label: int | None = None) -> torch.Tensor:
        labels = self.labels_for(latents, label)
        self._standing_statistics()
        if labels is None:
            images = torch.cat([self.G_ema(latents[part]) for part in in_chunks(len(latents), 512)])
        else:
            images = torch.cat([self.G_ema(latents[part], labels[part]) for part in in_chunks(len(latents), 512)])
        return self.to_straight_alpha(images)

    @torch.no_grad()
    def _standing_statistics(self) -> None:
        """G_ema's batch-norm statistics measured on G_ema itself ("standing statistics", as BigGAN
        does), once per training step it is sampled at. The running statistics it gets from G belong
        to G's weights, not the averaged ones: sampled with them, the EMA generator's images came out
        blurred and less varied (emoji, 32 px: FD 1,945 and recall 0.34 against 1,876 and 0.43 with
        batch statistics). A fixed seed keeps them the same for the same weights."""
        if self._standing_for == (self.step, self.state_version):
            return
        norms = [m for m in self.G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        generator = torch.Generator(device=self.device).manual_seed(STANDING_SEED)
        try:
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a plain average over the batches below
            self.G_ema.train()
            for _ in range(STANDING_BATCHES if norms else 0):
                z = torch.randn(STANDING_SIZE, self.p["latent"], generator=generator, device=self.device)
                self.G_ema(z, self.labels_for(z, None)) if self.conditioned else self.G_ema(z)
        finally:
            self.G_ema.eval()
            for norm, momentum in zip(norms, momenta):
                norm.momentum = momentum
        self._standing_for = (self.step, self.state_version)

    def sample(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        return self.from_latents(self.latents(n, generator), label)

    @torch.no_grad()
    def score(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """The discriminator's logit: higher means D finds the image more real (as one of class
        ``label``, when D learnt classes)."""
        return torch.cat([self.critic(images[part], label) for part in in_chunks(len(images), 512)])

    def critic(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """D's logit, the log-odds that an image is real, with its gradient. A D that learnt classes
        judges an image as one of class ``label``, or, for any, as one of some class: the log of
        Σ_k π_k exp(logit_k) over the classes' training proportions π."""
        images = self.to_own_alpha(images)
        if not self.conditioned:
            return self.D(images).flatten()
        if label is not None:
            return self.D(images, self.labels_for(images, label)).flatten()
        return torch.logsumexp(self.D.every_class(images) + self.class_counts.log_shares(), dim=1)


class LabelledGenerator(nn.Module):
    """A class-conditional G: its decoder (``body``) sees z beside the class's embedding."""

    def __init__(self, body: nn.Module, labels: ClassInput):
        super().__init__()
        self.body, self.labels = body, labels

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(self.labels(z, labels))
