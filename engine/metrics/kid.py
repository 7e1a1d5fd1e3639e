"""Kernel Inception Distance (Binkowski et al. 2018), as in StyleGAN3's
metrics/kernel_inception_distance.py: unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets. Pure float64 numpy.

Unlike FID it is unbiased in the sample size, so small sets give comparable numbers; the
spread over subsets tells how much of a difference between two models is noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.metrics.validate import as_features


@dataclass(frozen=True)
class KID:
    """KID estimate: mean and standard deviation (not standard error) over subsets."""

    mean: float
    std: float


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size (m, d) samples under the cubic polynomial kernel.

    Same algebra as StyleGAN3: the within-set sums drop their diagonals (the unbiased part),
    the cross term keeps all m^2 pairs.
    """
    m, d = x.shape
    a = (x @ x.T / d + 1.0) ** 3 + (y @ y.T / d + 1.0) ** 3
    b = (x @ y.T / d + 1.0) ** 3
    return float(((a.sum() - np.trace(a)) / (m - 1) - 2.0 * b.sum() / m) / m)


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> KID:
    """KID between two (N, D) feature sets; deterministic for a given seed.

    Each subset draws min(subset_size, len(real), len(fake)) rows of each set without
    replacement, from np.random.default_rng(seed).
    """
    x_all, y_all = as_features(fake, "fake"), as_features(real, "real")
    if x_all.shape[1] != y_all.shape[1]:
        raise ValueError(f"feature sizes differ: real {y_all.shape[1]}, fake {x_all.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    m = min(subset_size, len(x_all), len(y_all))
    rng = np.random.default_rng(seed)
    vals = np.empty(subsets)
    for i in range(subsets):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        vals[i] = _mmd2_unbiased(x, y)
    return KID(mean=float(vals.mean()), std=float(vals.std()))
