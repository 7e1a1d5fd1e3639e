"""Array preprocessing shared by every source: channels, resize + centre-crop, fingerprint."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_nhwc(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N,H,W,C) uint8 with C in {1,3} → the run's channel count."""
    have = images.shape[-1]
    if have == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    grey = np.tensordot(images.astype(np.float32), _LUMA, axes=([-1], [0]))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


FLOAT_CHUNK_BYTES = 256 * 2**20  # float32 working memory of one resize chunk


def resize_center_crop(images: np.ndarray, size: int, chunk: int = 4096) -> np.ndarray:
    """(N,H,W,C) uint8 → (N,size,size,C): short side scaled to size (antialiased), centre crop."""
    n, h, w, c = images.shape
    if h == size and w == size:
        return images
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    # a large size would make 4096 float images several GB: keep the chunk's floats bounded
    chunk = max(1, min(chunk, FLOAT_CHUNK_BYTES // (4 * c * (h * w + new_h * new_w))))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = np.empty((n, size, size, c), dtype=np.uint8)
    for start in range(0, n, chunk):
        batch = torch.from_numpy(images[start:start + chunk]).permute(0, 3, 1, 2).float()
        batch = F.interpolate(batch, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        batch = batch[:, :, top:top + size, left:left + size]
        out[start:start + chunk] = batch.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def prepare(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Any (N,H,W) / (N,H,W,C) uint8 array → (N,size,size,channels) uint8."""
    return resize_center_crop(convert_channels(to_nhwc(images), channels), size)


def fingerprint(images: np.ndarray, labels: np.ndarray | None) -> str:
    """A short content hash that says whether a resumed run sees the same data."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()
