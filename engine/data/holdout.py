"""The held-out share of a folder or an .npz: the evaluation's reference, never trained on.

Seeded and stratified by class. Each image is ranked within its class by a hash of its key (its file
path, or its index in an .npz), so the split does not depend on the order files are read in, and
images added to a folder later leave the others where they were (unless the counts move). Fashion-MNIST
has its own test split and is never split here.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

MIN_HELDOUT = 50      # fewer held-out images than this measure nothing: the folder is used whole
TARGET_HELDOUT = 300  # "a few hundred" held out when the folder allows (at most twice the share)
SEED = "chorus-holdout-1"


@dataclass(frozen=True)
class Split:
    train: np.ndarray    # indices, ascending
    heldout: np.ndarray  # indices, ascending (empty when nothing is held out)
    note: str            # one line for the load report


def heldout_count(n: int, share: float) -> int:
    """How many of ``n`` images to hold out: ``share`` of them, raised towards TARGET_HELDOUT while
    that stays within twice the share; 0 when fewer than MIN_HELDOUT would be."""
    if share <= 0:
        return 0
    count = max(math.ceil(share * n), min(TARGET_HELDOUT, math.floor(2 * share * n)))
    return count if count >= MIN_HELDOUT else 0


def split_holdout(keys: tuple[str, ...], labels: np.ndarray | None, share: float) -> Split:
    n = len(keys)
    everything = np.arange(n)
    count = heldout_count(n, share)
    if count == 0:
        if share <= 0:
            note = "Nothing held out (holdout 0): evaluation compares with the training images themselves."
        else:
            note = (f"Too few images to hold any out ({n:,}; {math.ceil(MIN_HELDOUT / share):,} or more are "
                    "needed): evaluation compares with the training images themselves, so it cannot tell a "
                    "copy from a new picture.")
        return Split(everything, everything[:0], note)
    rank = np.array([int.from_bytes(hashlib.blake2b(f"{SEED}\0{key}".encode("utf-8", "surrogateescape"),
                                                    digest_size=8).digest(), "big") for key in keys], dtype=np.uint64)
    groups = [everything] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    held: list[np.ndarray] = []
    for group in groups:
        take = min(len(group) - 1, round(count * len(group) / n))  # every class keeps an image to train on
        if take > 0:
            held.append(group[np.argsort(rank[group], kind="stable")[:take]])
    heldout = np.sort(np.concatenate(held)) if held else everything[:0]
    train = np.setdiff1d(everything, heldout, assume_unique=True)
    by_class = ", stratified by class" if labels is not None else ""
    note = (f"Held out {len(heldout):,} of {n:,} images ({len(heldout) / n:.0%}{by_class}) as the evaluation's "
            f"reference; training on the other {len(train):,}.")
    return Split(train, heldout, note)
