"""Memorisation: how many generated images are closer to a training image than held-out images are.

For each held-out image (never trained on) the distance to its nearest training image, in the
evaluation's feature space, says how close a *new* picture from the same source comes to the
training set. The copy threshold is the 1st percentile of those distances; a sample nearer than that
to its nearest training image counts as a likely copy. Held-out images themselves score about 1 %
by construction, a generator that returns training images scores 100 %. (The same construction as
the "data-copying" tests of Meehan et al. 2020 and the authenticity of Alaa et al. 2022, with the
held-out set as the yardstick instead of the training set's own spacing.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.metrics.validate import as_features

QUANTILE = 0.01
_CHUNK = 1024


@dataclass(frozen=True)
class CopyTest:
    threshold: float      # distance below which a sample counts as a likely copy
    heldout_rate: float   # the share of held-out images under it (≈ QUANTILE)
    train: torch.Tensor   # training features (float64), searched for each sample's nearest one

    def rate(self, fake: np.ndarray) -> float:
        """The share of ``fake``'s rows within ``threshold`` of a training image."""
        return float(np.mean(nearest_distances(fake, self.train) <= self.threshold))

    def describe(self) -> dict[str, float | str]:
        return {"test": f"share of samples nearer to a training image than {1 - QUANTILE:.0%} of held-out "
                        "images are (feature space; held-out images score about 1 %)",
                "threshold": self.threshold, "heldout_rate": self.heldout_rate}


def copy_test(train: np.ndarray, heldout: np.ndarray) -> CopyTest:
    train_t = torch.from_numpy(as_features(train, "train features"))  # float64: copies are at ~0
    distances = nearest_distances(as_features(heldout, "held-out features"), train_t)
    threshold = float(np.quantile(distances, QUANTILE))
    return CopyTest(threshold, float(np.mean(distances <= threshold)), train_t)


def nearest_distances(query: np.ndarray, train: torch.Tensor) -> np.ndarray:
    """Euclidean distance from each row of ``query`` to its nearest row of ``train`` (exact)."""
    query_t = torch.from_numpy(np.asarray(query, dtype=np.float64))
    out = []
    with torch.no_grad():
        for part in query_t.split(_CHUNK):
            out.append(torch.cdist(part, train).min(dim=1).values)
    return torch.cat(out).numpy()
