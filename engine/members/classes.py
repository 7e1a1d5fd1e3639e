"""Class conditioning shared by the generators: the ``classes`` setting, the classes a sample asks for,
and how "any class" picks one per image.

A member that declares ``can_condition`` and runs on labelled data (two classes or more) with
``classes=on`` learns p(image | class). Sampling asks for one class (``label``, an index into the
run's class names) or for any (``label=None``). "Any" must keep what every member promises of its
latents: image j depends only on the seed and j, and a latent names one image for good (recipes,
variations, interpolation). So the class of image j is read from its latent: u = Φ(w · z) with w a
fixed unit vector is uniform on [0, 1] for a Gaussian latent z, and the class is where u falls in the
cumulative class frequencies the member counted in training. The classes come out in the training
set's proportions, one latent always gives the same class, and a latent neighbour usually keeps its
class. The price is one of the latent's directions, which the class fixes: 1 of 64 for the DCGAN's z,
1 of 3,072 for a 32-px colour diffusion's noise.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.config import Param
from engine.errors import UserError

DIRECTION_SEED = 20_261_130  # the fixed direction w that "any class" reads a latent along
NEW_RUN_CLASSES = "on"       # what "auto" settles to in a new run on labelled data (measured: docs/quality.md)
MIN_CLASSES = 2              # fewer labels than this is no class to learn

CLASSES_PARAM = Param(
    "classes", "auto", choices=("auto", "on", "off"),
    help="learn each class of a labelled folder (its subfolders) so that samples can be asked for one; "
         "auto: " + NEW_RUN_CLASSES + " for a new run")


def settle_classes(params: dict, num_classes: int) -> dict:
    """``params`` with an "auto" ``classes`` settled for a new run on data with ``num_classes``; "on"
    without labels is refused (nothing to learn)."""
    settled = dict(params)
    if settled.get("classes", "auto") == "auto":
        settled["classes"] = NEW_RUN_CLASSES if num_classes >= MIN_CLASSES else "off"
    elif settled["classes"] == "on" and num_classes < MIN_CLASSES:
        raise UserError("classes = on needs labelled images (a folder with one subfolder per class, or "
                        f"Fashion-MNIST); these have {'no labels' if num_classes == 0 else 'one class'}")
    return settled


def is_conditioned(can_condition: bool, params: dict, num_classes: int) -> bool:
    """A member learns classes: it can, the data has them, and its run says so ("auto" left in a
    run.json is a run made before classes existed: it learnt none)."""
    return can_condition and num_classes >= MIN_CLASSES and params.get("classes", "auto") == "on"


class ClassCounts(nn.Module):
    """How many training images of each class the member has seen: the proportions "any class"
    samples in. A buffer, so it travels with the checkpoints."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_classes))

    @torch.no_grad()
    def observe(self, labels: torch.Tensor) -> None:
        self.counts.index_add_(0, labels, torch.ones_like(labels, dtype=self.counts.dtype))

    def shares(self) -> torch.Tensor:
        """Each class's share of the training images seen (every class alike before any)."""
        counts = self.counts.double()
        if float(counts.sum()) <= 0:
            counts = torch.ones_like(counts)
        return (counts / counts.sum()).float()

    def log_shares(self) -> torch.Tensor:
        """The log of ``shares`` (floored, so an unseen class is unlikely, not impossible): the prior
        over classes when a member judges an image as one of any class."""
        return self.shares().clamp_min(1e-12).log()

    def cumulative(self) -> torch.Tensor:
        return self.shares().double().cumsum(0).float()

    def any_labels(self, latents: torch.Tensor) -> torch.Tensor:
        """One class per latent (see the module's doc); same latent → same class."""
        flat = latents.detach().flatten(1).float()
        u = torch.special.ndtr(flat @ fixed_direction(flat.shape[1], flat.device))
        cumulative = self.cumulative().to(flat.device)
        return torch.searchsorted(cumulative, u.contiguous(), right=True).clamp_max(len(cumulative) - 1)


def fixed_direction(size: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(DIRECTION_SEED)
    w = torch.randn(size, generator=generator, dtype=torch.float64)
    return (w / w.norm()).float().to(device)


def asked_labels(name: str, conditioned: bool, counts: ClassCounts | None, latents: torch.Tensor,
                 label: int | None) -> torch.Tensor | None:
    """The class of each latent's image: ``label`` for all, or any (read from the latents); None for
    a member without classes. Asking a class of such a member, or one it does not have, is refused."""
    if label is None:
        return counts.any_labels(latents) if conditioned else None
    if not conditioned:
        raise UserError(f"member {name!r} was trained without classes, so it cannot be asked for one")
    check_label(label, len(counts.counts))
    return torch.full((len(latents),), int(label), dtype=torch.long, device=latents.device)


def check_label(label: int, num_classes: int) -> None:
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < num_classes:
        raise UserError(f"class {label!r} is not one of this run's {num_classes} classes (0–{num_classes - 1})")
