"""An .npz file of uint8 images, (N, H, W) or (N, H, W, C), with optional labels."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from engine.errors import DataNotFound, UserError


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (images, labels or None). Arrays named 'images'/'x' and 'labels'/'y', else the first."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an .npz file (an .npz is a zip archive of numpy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:  # never unpickle user files
            names = list(archive.files)
            if not names:
                raise UserError(f"{path} holds no arrays")
            key = next((k for k in ("images", "x", "x_train") if k in names), None)
            if key is None and len(names) > 1:
                raise UserError(f"{path} holds arrays {', '.join(names)}: which are the images? "
                                "Save them as 'images' (and their labels as 'labels')")
            key = key or names[0]
            images = archive[key]
            label_key = next((k for k in ("labels", "y", "y_train") if k in names), None)
            labels = archive[label_key] if label_key else None
    except FileNotFoundError:
        raise DataNotFound(f"data file not found: {path}") from None
    except ValueError as exc:
        if "pickle" in str(exc):  # object arrays: numpy would suggest unpickling, which Chorus never does
            raise UserError(f"{path} holds Python objects, not arrays of numbers; save the images as a "
                            "uint8 array") from None
        raise UserError(f"{path} is not a readable .npz of images: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a readable .npz of images: {exc}") from None
    if images.dtype != np.uint8:
        raise UserError(f"{path}: images must be uint8, got {images.dtype}")
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (3, 4)):
        raise UserError(f"{path}: images must be shaped (N,H,W) or (N,H,W,C) with C in 1/3/4, got {images.shape}")
    if images.shape[0] == 0:
        raise UserError(f"{path} holds no images")
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            labels = None  # labels are optional; wrong ones are ignored rather than trusted
        else:
            labels = labels.astype(np.int64)
            if labels.min() < 0:
                labels = None
    return images, labels
