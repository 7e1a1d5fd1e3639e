"""Turn a data spec ('fashion-mnist', a folder, an .npz) into a prepared uint8 array with labels.

"auto" size and channels are resolved here, from the pictures, and a folder's or an .npz's held-out
share is set aside here (engine/data/holdout.py): ``LoadedData.images`` never holds a held-out image.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import AUTO, FASHION_MNIST, DataConfig
from engine.data.holdout import Split, split_holdout
from engine.data.memory import check_fits
from engine.data.preprocess import auto_size_for, fingerprint, prepare
from engine.errors import DataNotFound, UserError

Progress = Callable[[int, int], None]  # (files read, files in all) while a folder is read


@dataclass(frozen=True)
class LoadedData:
    images: np.ndarray            # (N, size, size, channels) uint8: the training images only
    labels: np.ndarray | None     # (N,) int64 or None
    class_names: tuple[str, ...]
    fingerprint: str
    report: str                   # what was loaded and what was skipped, for the user
    config: DataConfig | None = None  # the settings read, "auto" resolved to numbers
    heldout: np.ndarray | None = None  # images never trained on: the evaluation's reference
    heldout_labels: np.ndarray | None = None
    paths: tuple[str, ...] = ()   # each training image's file (folders), same order as images

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0


def load_data(config: DataConfig, split: str = "train", progress: Progress | None = None) -> LoadedData:
    """Load and preprocess the configured source. ``split`` only applies to Fashion-MNIST."""
    spec = config.source
    if spec == FASHION_MNIST:
        from engine.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

        raw, labels = load_fashion_mnist(split)
        check_fits(len(raw), config.size, config.channels, f"Fashion-MNIST {split} split")
        images, _ = prepare(raw, config.size, config.channels)
        report = f"Fashion-MNIST {split} split: {len(images)} images, 10 classes"
        return LoadedData(images, labels, CLASS_NAMES, fingerprint(images, labels), report, config)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".npz" and not path.is_dir():
        from engine.data.npz import load_npz

        raw, labels = load_npz(path)
        size, size_note = auto_size_for(min(raw.shape[1:3])) if config.size == AUTO else (config.size, "")
        check_fits(len(raw), size, 4 if config.channels == AUTO else config.channels, str(path))
        images, channels_note = prepare(raw, size, config.channels)
        names = tuple(str(i) for i in range(int(labels.max()) + 1)) if labels is not None else ()
        report = f"{path}: {len(images)} images" + (f", {len(names)} classes" if names else "")
        notes = [n for n in (channels_note, size_note) if n]
        keys = tuple(str(i) for i in range(len(images)))
        return _held_out(config, images, labels, names, report, notes, keys, (), size)
    if not path.exists():
        raise DataNotFound(f"data not found: {spec} (give 'fashion-mnist', an image folder or an .npz file)")
    if not path.is_dir():
        raise UserError(f"data {spec} is neither a folder nor an .npz file")
    from engine.data.folder import auto_size, load_image_folder
    from engine.data.folder_cache import FolderCache

    size, size_note = auto_size(path) if config.size == AUTO else (config.size, "")
    folder = load_image_folder(path, size, config.channels, progress=progress, cache=FolderCache(str(path), size))
    notes = [n for n in (folder.channels_note, size_note) if n]
    return _held_out(config, folder.images, folder.labels, tuple(folder.class_names), folder.report.summary(),
                     notes, folder.paths, folder.paths, size)


def _held_out(config: DataConfig, images: np.ndarray, labels: np.ndarray | None, names: tuple[str, ...],
              report: str, notes: list[str], keys: tuple[str, ...], paths: tuple[str, ...],
              size: int) -> LoadedData:
    """Set the held-out share aside (``keys`` name each image for the split: its file, or its index);
    the report says what "auto" chose and what was held out."""
    resolved = dataclasses.replace(config, size=size, channels=int(images.shape[-1]))
    split: Split = split_holdout(keys, labels, config.holdout)
    train_labels = labels[split.train] if labels is not None else None
    train_images = images[split.train]
    lines = [report, *(f"Chose {note}." for note in notes), split.note]
    heldout = images[split.heldout] if len(split.heldout) else None
    heldout_labels = labels[split.heldout] if labels is not None and heldout is not None else None
    paths = tuple(paths[i] for i in split.train) if paths else ()
    return LoadedData(train_images, train_labels, names, fingerprint(train_images, train_labels),
                      "\n".join(line for line in lines if line), resolved, heldout, heldout_labels, paths)
