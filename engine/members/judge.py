"""The judge CNN (conv32 → conv64 → conv64 → dense 64 → classes).

With labels it learns the classes; without, it learns which of four rotations an image has
(self-supervised), which still teaches it what upright, real-looking images are. Its 64-d
penultimate layer supplies the features for evaluation and its confidence a realism score.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from engine.accel import CPU_AUTO, AutoPaths
from engine.config import OptimConfig, Param
from engine.data.dataset import Batch
from engine.members.augment import AUGMENT_BELOW, JUDGE_P, AdaptiveAugment
from engine.members.base import Loss, Member
from engine.members.classes import check_label
from engine.members.latents import in_chunks

ROTATIONS = 4


class JudgeNet(nn.Module):
    def __init__(self, channels: int, size: int, classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(64 * (size // 4) ** 2, 64), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        return self.head(self.features(x))


class Judge(Member):
    kind = "judge"
    title = "Judge CNN"
    default_pace = 0.5  # optimizer steps per ensemble step: measured (docs/quality.md, § Pace)
    default_optim = OptimConfig(name="adam", lr=1e-3, betas=(0.9, 0.999))
    can_sample = False
    can_score = True
    can_guide = True
    params = (
        Param("augment", "auto", choices=("auto", "on", "off"),
              help="train on images augmented as the DCGAN's D sees them (colour, translation, cutout), so "
                   "a judge that votes does not just recognise the training images; auto: on below "
                   "{:,} training images".format(AUGMENT_BELOW)),
    )
    fast_defaults = {"cpu": CPU_AUTO, "cuda": AutoPaths(fused=True, graphs_from=4900)}  # docs/performance.md

    @property
    def uses_labels(self) -> bool:
        return self.num_classes >= 2

    def build(self) -> None:
        channels, size, _ = self.image_shape
        self.net = JudgeNet(channels, size, self.num_classes if self.uses_labels else ROTATIONS)
        # "auto" left in a config is a run made before the choice, or the evaluation judge: no augmentation
        self.augment = AdaptiveAugment(enabled=self.p.get("augment", "auto") == "on", p=JUDGE_P)

    @classmethod
    def settle_params(cls, params, images: int, data=None, num_classes: int = 0) -> dict:
        settled = dict(params)
        if settled.get("augment", "auto") == "auto":
            settled["augment"] = "on" if images < AUGMENT_BELOW else "off"
        return super().settle_params(settled, images, data, num_classes)

    def networks(self) -> dict[str, nn.Module]:
        return {"judge": self.net}

    def _task(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.augment(batch.images, self.generator)
        if self.uses_labels and batch.labels is not None:
            return images, batch.labels
        k = torch.randint(ROTATIONS, (images.shape[0],), generator=self.generator, device=self.device)
        turns = torch.stack([torch.rot90(images, r, dims=(2, 3)) for r in range(ROTATIONS)])
        return turns[k, torch.arange(len(k), device=self.device)], k

    def losses(self, batch: Batch) -> Iterator[Loss]:
        images, targets = self._task(batch)
        with self.autocast():
            logits = self.net(images)
            loss = F.cross_entropy(logits, targets)
        yield Loss("judge", loss, {"loss": loss, "accuracy": (logits.argmax(1) == targets).float().mean()})

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        self.net.eval()
        try:
            return torch.cat([self.net.features(images[part]) for part in in_chunks(len(images), 1024)])
        finally:
            self.net.train()

    @torch.no_grad()
    def score(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """Confidence: the probability of class ``label`` (asked), the top class's (labels) or the
        'upright' probability (rotations)."""
        probs = torch.cat([F.softmax(self.net.head(f), 1) for f in self.features(images).split(1024)])
        return self._confidence(probs, label)

    def critic(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """The log of ``score``'s confidence, with its gradient."""
        return self._confidence(F.log_softmax(self.net(images), 1), label)

    def _confidence(self, probs: torch.Tensor, label: int | None) -> torch.Tensor:
        if not self.uses_labels:
            return probs[:, 0]
        if label is None:
            return probs.max(1).values
        check_label(label, self.num_classes)
        return probs[:, label]
