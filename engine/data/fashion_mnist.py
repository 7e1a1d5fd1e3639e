"""The bundled Fashion-MNIST (idx files from Debian's dataset-fashion-mnist, MIT licence)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.resources import resource_path

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not a uint8 idx file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).copy()  # writable for torch
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: expected {dims}, found {data.size} bytes")
    return data.reshape(dims)


def load_fashion_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, read from resources/."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = resource_path("fashion-mnist")
    images_name, labels_name = _FILES[split]
    try:
        images = _read_idx(folder / images_name)
        labels = _read_idx(folder / labels_name).astype(np.int64)
    except FileNotFoundError as exc:
        raise UserError(f"the bundled Fashion-MNIST is missing ({exc.filename}); reinstall Chorus") from None
    return images, labels
