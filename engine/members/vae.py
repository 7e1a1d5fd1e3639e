"""Convolutional VAE: Gaussian latent, β-weighted KL, and a pixel likelihood that is either
Bernoulli-style (cross-entropy: right for near-binary images such as Fashion-MNIST's) or a Gaussian
whose variance is set to the reconstruction's own mean squared error (σ-VAE, Rybkin et al. 2021: the
calibrated decoder weighs reconstruction against KL by itself). Measured on the emoji benchmark
(32 px RGBA, 1,500 steps): the Gaussian's samples show more detail (faces, outlines) but mix
colours and shapes from far-apart codes: FD 5,002, recall 0.02 against the Bernoulli's 3,702 and 0.17,
so Bernoulli stays the default.

Sampling draws codes from a Gaussian fitted to the aggregate posterior (``prior="fitted"``, the
default of new runs) rather than from N(0, I): the encoder's codes of the training images never fill
the unit Gaussian (the KL term is a compromise), so codes drawn from N(0, I) land where the decoder
saw few and decode to blurs. Refitting a Gaussian to the codes after training ("ex-post density
estimation", Ghosh et al. 2020; the second stage of Dai & Wipf 2019) took a trained VAE on emoji
from FD 3,702 to 2,334 and on Fashion-MNIST from 162.5 to 139.0 (docs/quality.md). Here the fit is
kept up during training: running moments of the codes, E[z] and E[z zᵀ] with z ~ q(z | x), averaged
over a half-life of ``PRIOR_HALF_LIFE`` images (ramped up like the EMA copies), so the member needs
no pass over the data after training. A latent (``latents``) is still a N(0, I) draw ε: it is mapped
to a code by z = mean + L ε (L the Cholesky factor of the fitted covariance), so variations and
interpolations work on ε as for every member."""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.accel import CPU_AUTO, AutoPaths
from engine.config import OptimConfig, Param
from engine.data.dataset import Batch
from engine.members.base import Loss, Member
from engine.members.classes import CLASSES_PARAM
from engine.members.latents import in_chunks
from engine.members.nets import ClassInput, Decoder, Encoder


PRIOR_HALF_LIFE = 10_000  # images: the fitted prior follows the encoder's recent codes
PRIOR_JITTER = 1e-5  # added to the fitted covariance's diagonal: positive definite whatever the codes
MIN_LOG_SIGMA = -6.0  # σ ≥ 0.0025: a perfect reconstruction cannot drive the loss to −∞
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class VAE(Member):
    kind = "vae"
    title = "VAE"
    one_pass = True
    can_score = True
    can_vary = "latent"
    can_interpolate = True
    # a conditional VAE: the decoder sees the class's embedding beside the code, the encoder adds a
    # per-class offset so that its codes need not carry the class
    can_condition = True
    params = (
        Param("latent", 16, 2, 1024, help="size of the Gaussian latent"),
        Param("width", "auto", 4, 512, auto=int, help="channels of the finest layer; auto: sized for the image size"),
        Param("beta", 1.0, 0.0, 100.0, help="weight of the KL term (β-VAE)"),
        Param("likelihood", "bernoulli", choices=("bernoulli", "gaussian"),
              help="pixel likelihood: bernoulli (cross-entropy) or gaussian with the variance set by the "
                   "reconstruction error (σ-VAE: more detail, but its samples measured worse on emoji)"),
        Param("prior", "auto", choices=("auto", "fitted", "standard"),
              help="where samples' codes come from: fitted (a Gaussian fitted to the training images' "
                   "codes: sharper, measured better) or standard (N(0, I)); auto is fitted in new runs"),
        CLASSES_PARAM,
    )
    default_pace = 0.5  # optimizer steps per ensemble step: measured (docs/quality.md, § Pace)
    default_optim = OptimConfig(name="adam", lr=1e-3, betas=(0.9, 0.999))
    tiny_params = {"width": 8, "latent": 8}
    sized = {"width": 32}  # measured at 28 and 32 px (docs/quality.md); engine/members/sizing.py
    fast_defaults = {"cpu": CPU_AUTO, "cuda": AutoPaths(fused=True, graphs_from=5100)}  # docs/performance.md

    def build(self) -> None:
        channels, size, _ = self.image_shape
        p = self.p
        classes = self.num_classes if self.conditioned else 0
        self.net = nn.ModuleDict({
            "encoder": Encoder(channels, size, p["width"], 2 * p["latent"], classes=classes),
            "decoder": Decoder(p["latent"] * (2 if classes else 1), channels, size, p["width"], norm=False),
            **({"labels": ClassInput(classes, p["latent"])} if classes else {}),
        })
        self.encoder, self.decoder = self.net["encoder"], self.net["decoder"]
        self.gaussian = p.get("likelihood", "bernoulli") == "gaussian"
        if self.gaussian:  # σ², smoothed over batches, for scoring images one by one
            self.decoder.register_buffer("log_sigma", torch.zeros(()))
        self.fitted = p.get("prior", "auto") == "fitted"  # "auto" left in a run.json: a run from before
        self.prior = FittedPrior(p["latent"])
        self._prior_for: tuple[int, int] | None = None
        self._prior_map: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def settle_params(cls, params, images: int, data=None, num_classes: int = 0) -> dict:
        settled = dict(params)
        if settled.get("prior", "auto") == "auto":
            settled["prior"] = "fitted"
        return super().settle_params(settled, images, data, num_classes)

    def networks(self) -> dict[str, nn.Module]:
        return self.with_classes({"vae": self.net, "prior": self.prior} if self.fitted else {"vae": self.net})

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"vae": self.net}

    def compiled_modules(self) -> list[nn.Module]:
        return [self.encoder, self.decoder]  # train_step calls these, not the ModuleDict

    def _decode(self, codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The decoder's logits for ``codes`` (beside each image's class, for a VAE that learnt classes)."""
        return self.decoder(codes if labels is None else self.net["labels"](codes, labels))

    def _terms(self, images: torch.Tensor, z_noise: torch.Tensor | None, labels: torch.Tensor | None = None):
        """Per-image reconstruction (nats) and KL; posterior mean when ``z_noise`` is None."""
        mu, logvar = self.encoder(images, labels).chunk(2, dim=1)
        logvar = logvar.clamp(-20, 10)
        if self.fitted and z_noise is not None:
            self.prior.observe(mu, logvar, 1.0 - self.ema_beta(PRIOR_HALF_LIFE))
        z = mu if z_noise is None else mu + torch.exp(0.5 * logvar) * z_noise
        logits = self._decode(z, labels)
        target = (images + 1) / 2
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        if not self.gaussian:
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1), kl
        squared = (torch.sigmoid(logits.float()) - target).pow(2).flatten(1)
        if z_noise is None:  # scoring: the variance learnt in training
            log_sigma = self.decoder.log_sigma
        else:  # training: the batch's own error sets σ (its optimum); the gradient flows through it
            log_sigma = (0.5 * squared.mean().clamp_min(1e-12).log()).clamp_min(MIN_LOG_SIGMA)
            with torch.no_grad():
                self.decoder.log_sigma.lerp_(log_sigma.detach(), 0.01)
        recon = (0.5 * squared / torch.exp(2 * log_sigma) + log_sigma + HALF_LOG_2PI).sum(1)
        return recon, kl

    def losses(self, batch: Batch) -> Iterator[Loss]:
        images = batch.images
        labels = self.training_labels(batch)
        eps = torch.randn(images.shape[0], self.p["latent"], generator=self.generator, device=self.device)
        with self.autocast():
            recon, kl = self._terms(images, eps, labels)
            loss = (recon.float() + self.p["beta"] * kl.float()).mean()
        yield Loss("vae", loss, {"loss": loss, "recon": recon.mean(), "kl": kl.mean()})

    def latent_shape(self) -> tuple[int, ...]:
        return (self.p["latent"],)

    @torch.no_grad()
    def from_latents(self, latents: torch.Tensor, label: int | None = None) -> torch.Tensor:
        labels = self.labels_for(latents, label)
        codes = self.codes(latents)
        return torch.cat([torch.sigmoid(self._decode(codes[part], None if labels is None else labels[part])) * 2 - 1
                          for part in in_chunks(len(codes), 512)])

    def codes(self, latents: torch.Tensor) -> torch.Tensor:
        """The decoder's codes for N(0, I) latents: the fitted prior's mean + L ε, or ε itself."""
        if not self.fitted or not self.prior.ready():
            return latents
        if self._prior_for != (self.step, self.state_version):  # once per step sampled at
            self._prior_map = self.prior.affine()
            self._prior_for = (self.step, self.state_version)
        mean, factor = self._prior_map
        return mean + latents @ factor.T

    def sample(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        return self.from_latents(self.latents(n, generator), label)

    @torch.no_grad()
    def score(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """The ELBO (at the posterior mean): higher means the VAE finds the image more likely. A VAE
        that learnt classes scores an image as one of class ``label``, or, for any, as one of some
        class: log Σ_k π_k exp(ELBO_k) over the classes' training proportions π (a bound on log p(x))."""
        if not self.conditioned:
            return torch.cat([self._elbo(images[part], None) for part in in_chunks(len(images), 512)])
        if label is not None:
            labels = self.labels_for(images, label)
            return torch.cat([self._elbo(images[part], labels[part]) for part in in_chunks(len(images), 512)])
        log_share = self.class_counts.log_shares()
        per_class = [self.score(images, k) + log_share[k] for k in range(self.num_classes)]
        return torch.logsumexp(torch.stack(per_class, dim=1), dim=1)

    def _elbo(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        recon, kl = self._terms(images, None, labels)
        return -(recon + kl)


class FittedPrior(nn.Module):
    """Running moments of the VAE's codes z ~ q(z | x) over the training images: E[z] and E[z zᵀ]
    (the latter as E[μ μᵀ] + diag E[σ²], exact for the Gaussian posteriors), as buffers that travel
    with the checkpoints. ``affine`` turns them into the mean and Cholesky factor of the Gaussian with
    those moments."""

    def __init__(self, latent: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(latent))
        self.register_buffer("second", torch.eye(latent))
        self.register_buffer("seen", torch.zeros(()))  # 0: never observed (sample from N(0, I))

    @torch.no_grad()
    def observe(self, mu: torch.Tensor, logvar: torch.Tensor, weight: float | torch.Tensor) -> None:
        """Move the moments towards one batch's by ``weight`` (1 − the EMA decay, about 1 at the first
        step thanks to its ramp-up; a device tensor under a step graph, so nothing is read on the host)."""
        mu, var = mu.detach().float(), logvar.detach().float().exp()
        second = mu.T @ mu / mu.shape[0] + torch.diag(var.mean(0))
        self.mean.lerp_(mu.mean(0), weight)
        self.second.lerp_(second, weight)
        self.seen.add_(mu.shape[0])

    def ready(self) -> bool:
        return bool(self.seen > 0)

    @torch.no_grad()
    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean, second = self.mean.double(), self.second.double()
        cov = second - torch.outer(mean, mean)
        cov = 0.5 * (cov + cov.T) + PRIOR_JITTER * torch.eye(len(mean), dtype=cov.dtype, device=cov.device)
        factor, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:  # rounding left it indefinite: clip the eigenvalues
            values, vectors = torch.linalg.eigh(cov)
            factor = vectors * values.clamp_min(PRIOR_JITTER).sqrt()
        return self.mean.clone(), factor.to(self.mean.dtype)
