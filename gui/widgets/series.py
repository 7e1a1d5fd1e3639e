"""A growing (x, y) series in preallocated numpy arrays that double when full.

Appending is amortised O(1) and the plot reads views of the filled part, so a run with millions of
logged steps never rebuilds Python lists.
"""
from __future__ import annotations

import numpy as np


class GrowingSeries:
    def __init__(self, capacity: int = 1024):
        self._x = np.empty(capacity, dtype=np.float64)
        self._y = np.empty(capacity, dtype=np.float64)
        self.n = 0

    def _reserve(self, needed: int) -> None:
        if needed <= len(self._x):
            return
        capacity = len(self._x)
        while capacity < needed:
            capacity *= 2
        for name in ("_x", "_y"):
            grown = np.empty(capacity, dtype=np.float64)
            grown[:self.n] = getattr(self, name)[:self.n]
            setattr(self, name, grown)

    def append(self, x: float, y: float) -> None:
        self._reserve(self.n + 1)
        self._x[self.n] = x
        self._y[self.n] = y
        self.n += 1

    def extend(self, xs: np.ndarray, ys: np.ndarray) -> None:
        count = len(xs)
        self._reserve(self.n + count)
        self._x[self.n:self.n + count] = xs
        self._y[self.n:self.n + count] = ys
        self.n += count

    def clear(self) -> None:
        self.n = 0

    @property
    def capacity(self) -> int:
        return len(self._x)

    @property
    def x(self) -> np.ndarray:
        return self._x[:self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[:self.n]
