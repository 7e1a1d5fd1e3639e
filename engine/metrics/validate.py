"""Input check shared by every metric: an (N, D) finite float64 feature array."""
from __future__ import annotations

import numpy as np


def as_features(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    """Validate an (N, D) finite feature array with N >= ``min_rows`` and return it as float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name}: expected an (N, D) array with N >= {min_rows}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: features contain NaN or inf")
    return x
