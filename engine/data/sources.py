"""Turn a data spec ('fashion-mnist', a folder, an .npz) into a prepared uint8 array with labels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import FASHION_MNIST, DataConfig
from engine.data.memory import check_fits
from engine.data.preprocess import fingerprint, prepare
from engine.errors import DataNotFound, UserError


@dataclass(frozen=True)
class LoadedData:
    images: np.ndarray            # (N, size, size, channels) uint8
    labels: np.ndarray | None     # (N,) int64 or None
    class_names: tuple[str, ...]
    fingerprint: str
    report: str                   # what was loaded and what was skipped, for the user

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0


def load_data(config: DataConfig, split: str = "train") -> LoadedData:
    """Load and preprocess the configured source. ``split`` only applies to Fashion-MNIST."""
    spec = config.source
    if spec == FASHION_MNIST:
        from engine.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

        raw, labels = load_fashion_mnist(split)
        check_fits(len(raw), config.size, config.channels, f"Fashion-MNIST {split} split")
        images = prepare(raw, config.size, config.channels)
        report = f"Fashion-MNIST {split} split: {len(images)} images, 10 classes"
        return LoadedData(images, labels, CLASS_NAMES, fingerprint(images, labels), report)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".npz" and not path.is_dir():
        from engine.data.npz import load_npz

        raw, labels = load_npz(path)
        check_fits(len(raw), config.size, config.channels, str(path))
        images = prepare(raw, config.size, config.channels)
        names = tuple(str(i) for i in range(int(labels.max()) + 1)) if labels is not None else ()
        report = f"{path}: {len(images)} images" + (f", {len(names)} classes" if names else "")
        return LoadedData(images, labels, names, fingerprint(images, labels), report)
    if not path.exists():
        raise DataNotFound(f"data not found: {spec} (give 'fashion-mnist', an image folder or an .npz file)")
    if not path.is_dir():
        raise UserError(f"data {spec} is neither a folder nor an .npz file")
    from engine.data.folder import load_image_folder

    folder = load_image_folder(path, config.size, config.channels)
    return LoadedData(folder.images, folder.labels, tuple(folder.class_names),
                      fingerprint(folder.images, folder.labels), folder.report.summary())
