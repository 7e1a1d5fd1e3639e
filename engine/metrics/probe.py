"""A quick quality probe of each generator during training, for pace by gain (engine/training/pacer.py).

Each probe draws ``PROBE_SAMPLES`` images per generator from the same seed (so two probes differ only
by what the member learnt) and measures their Fréchet distance to a fixed subset of the training
images in the evaluation judge's features (engine/metrics/features.py's ``reference_judge``: trained
once per data set with a fixed seed and cached, the evaluation's own; it does not move while the
run's judge trains, so a distance now and one a review ago are comparable). The random feature space
was tried first and misled: it barely sees blur, so the VAE's blurry images looked 2× the DCGAN's
distance where the evaluation sees 5× (docs/quality.md § Pace by gain). A distance from so few
samples carries a bias; the probe measures it on real images (a disjoint subset of the same size,
the probe's floor) and subtracts it, so the ratios the pacer takes are the members'. Held-out images
are never looked at: they stay the evaluation's.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from engine.data.dataset import to_signed_float
from engine.data.sources import LoadedData
from engine.members.base import Member
from engine.metrics.features import JudgeFeatures, JudgeRecipe, judge_key, reference_judge
from engine.metrics.frechet import frechet_distance

PROBE_SAMPLES = 256      # images per generator and probe
PROBE_REFERENCE = 1024   # training images the probe compares with (fewer in a small folder)
PROBE_SEED = 7919        # the probe's sampling noise and its choice of training images
LEAST_DISTANCE = 1e-3    # a distance at or below the floor counts as this fraction of the floor
PROBE_JUDGE = JudgeRecipe()  # the evaluation's judge (a test may make it smaller)


class QualityProbe:
    def __init__(self, data: LoadedData, images: torch.Tensor, device: torch.device, samples: int = PROBE_SAMPLES):
        """``data``: the run's training data (for the evaluation judge); ``images``: the same images,
        (N, C, H, W) uint8 on the device (the run's DeviceDataset)."""
        self.device = device
        self.samples = samples
        self.features = JudgeFeatures(reference_judge(data, device, PROBE_JUDGE), judge_key(data, PROBE_JUDGE))
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(PROBE_SEED))
        floor_count = min(samples, len(images) // 2)
        reference = order[floor_count:floor_count + PROBE_REFERENCE]
        self.reference = self._embed(to_signed_float(images[reference.to(images.device)]))
        self.floor = frechet_distance(self._embed(to_signed_float(images[order[:floor_count].to(images.device)])),
                                      self.reference)

    def _embed(self, images: torch.Tensor) -> np.ndarray:
        return self.features(images.to(self.device))

    @torch.no_grad()
    def __call__(self, members: Mapping[str, Member]) -> dict[str, float]:
        """Each generator's distance to the training images above the probe's floor (> 0)."""
        distances = {}
        for name, member in members.items():
            drawn = member.sample(self.samples, torch.Generator().manual_seed(PROBE_SEED))
            raw = frechet_distance(self._embed(drawn.float().clamp(-1, 1)), self.reference)
            distances[name] = max(raw - self.floor, LEAST_DISTANCE * max(self.floor, 1.0))
        return distances
