"""Precision, recall, density and coverage (Naeem et al. 2020), matching
clovaai/generative-evaluation-prdc, in float64 numpy.

Each sample gets a ball whose radius is the distance to its k-th nearest neighbour in its own
set (itself excluded). Comparisons are strict (<), as in the reference. Distances are computed
a block of rows at a time, so 10k x 10k sets never hold a full N x M matrix; each block
(chunk_size x M float64, ~80 MB for 1024 x 10k) is reduced to per-sample counts at once.
"""

from __future__ import annotations

import numpy as np

from engine.metrics.validate import as_features


def _distance_blocks(x: np.ndarray, y: np.ndarray, chunk_size: int):
    """Yield (start, D) with D the Euclidean distances from x[start:start+chunk_size] to all y.

    Uses |a|^2 + |b|^2 - 2 a.b (one matmul per block), clamped at 0 against rounding.
    """
    yy = np.einsum("ij,ij->i", y, y)
    for start in range(0, len(x), chunk_size):
        xb = x[start : start + chunk_size]
        d2 = np.einsum("ij,ij->i", xb, xb)[:, None] + yy[None, :] - 2.0 * (xb @ y.T)
        np.maximum(d2, 0.0, out=d2)
        yield start, np.sqrt(d2, out=d2)


def _knn_radii(x: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row (self, at 0, is index 0)."""
    radii = np.empty(len(x))
    for start, d in _distance_blocks(x, x, chunk_size):
        radii[start : start + len(d)] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, chunk_size: int = 1024) -> dict[str, float]:
    """Precision, recall, density, coverage of fake features against real ones.

    precision: share of fake inside some real ball; recall: share of real inside some fake
    ball; density: mean over fake of (#real balls containing it) / k; coverage: share of real
    whose nearest fake lies inside its own ball.
    """
    real, fake = as_features(real, "real", min_rows=1), as_features(fake, "fake", min_rows=1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k must be in [1, {min(len(real), len(fake)) - 1}], got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    # Distances are translation invariant; centring shrinks the norms and so the cancellation
    # error of the |a|^2 + |b|^2 - 2ab expansion.
    centre = np.concatenate([real, fake]).mean(axis=0)
    real, fake = real - centre, fake - centre
    r_real = _knn_radii(real, k, chunk_size)
    r_fake = _knn_radii(fake, k, chunk_size)
    balls_per_fake = np.zeros(len(fake), dtype=np.int64)
    real_recalled = np.empty(len(real), dtype=bool)
    real_covered = np.empty(len(real), dtype=bool)
    for start, d in _distance_blocks(real, fake, chunk_size):
        rows = slice(start, start + len(d))
        balls_per_fake += (d < r_real[rows, None]).sum(axis=0)
        real_recalled[rows] = (d < r_fake[None, :]).any(axis=1)
        real_covered[rows] = d.min(axis=1) < r_real[rows]
    return {
        "precision": float((balls_per_fake > 0).mean()),
        "recall": float(real_recalled.mean()),
        "density": float(balls_per_fake.mean() / k),
        "coverage": float(real_covered.mean()),
    }
