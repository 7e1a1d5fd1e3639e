"""The feature space fusions pick and fit in, apart from every evaluation space.

A vote keeps the pool images whose features look most like held-out training images; a mixture
fits its weights the same way. Done in the evaluation's own feature space, that choice is partly
graded by the network that made it: on the emoji colour benchmark the default vote scored 30–45 %
below the DCGAN's FD in the evaluation judge's features, where it picked, and no better than the
DCGAN in an untrained CNN's (docs/quality.md, "Kernel herding for the matched vote"). So fusions
pick in a network no evaluation uses: an untrained CNN of ``RandomFeatures``' design with its own
seed (``PICK_SEED``, not the random evaluation space's ``RANDOM_SEED``). It needs no training, so
the gallery's first vote does not wait for the evaluation judge either.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.data.sources import LoadedData
from engine.metrics.features import FeatureCache, RandomFeatures, cache_dir

PICK_SEED = 2026  # the picking network's weights: fixed, and no evaluation space's
FIT_HOLDOUT = 5000  # training images (at most) the fusions fit against; never the evaluation's reference
FIT_DRAW_SEED = 2  # which of them: a fixed shuffle of the training images, its last FIT_HOLDOUT


class PickingSpace:
    """Features for fusions (``FusionContext``): the extractor, and the held-out training images'
    features to pick towards, overall or for one class. Feature arrays are cached per data set."""

    def __init__(self, data: LoadedData, device: torch.device):
        self.extract = RandomFeatures(device, seed=PICK_SEED)
        self.cache = FeatureCache(self.extract, cache_dir() / "features")
        self.data = data
        self.device = device

    def fit_picks(self) -> np.ndarray:
        """Positions in ``data.images`` of the images fitted against (sorted)."""
        order = np.random.default_rng(FIT_DRAW_SEED).permutation(len(self.data.images))
        return np.sort(order[-FIT_HOLDOUT:])

    def fit_reference(self) -> np.ndarray:
        """Features of the training images fusions fit against (never the test split)."""
        return self.cache.of_uint8(f"{self.data.fingerprint}-fit{FIT_HOLDOUT}", self.data.images[self.fit_picks()],
                                   self.device)

    def class_reference(self, label: int) -> np.ndarray:
        """``fit_reference``'s images of class ``label`` (all of them when the data has no labels or
        fewer than two of that class)."""
        reference = self.fit_reference()
        if self.data.labels is None:
            return reference
        own = reference[self.data.labels[self.fit_picks()] == label]
        return own if len(own) >= 2 else reference
