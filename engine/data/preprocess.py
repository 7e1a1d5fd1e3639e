"""Array preprocessing shared by every source: channels, resize + centre-crop, fingerprint."""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from engine.config import CHANNEL_NAMES

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_nhwc(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


TRANSPARENT_SHARE = 0.5   # "auto" keeps alpha when more than this share of the pictures show some
GREY_SHARE = 0.99         # "auto" trains in grey when at least this share of the pictures are grey
GREY_SPREAD = 8           # a pixel is grey when its R, G and B lie within this (JPEG chroma noise)
INVISIBLE_LEVEL = 0.5     # opacity (uint8 levels) at or below which a straight-alpha pixel has no colour
_CHUNK = 1024

#: Sizes "auto" may choose (each divisible by 4, as every member needs) up to the largest: above 64 px
#: a default run on this project's 2-core CPU takes hours (docs/performance.md).
AUTO_SIZES: tuple[int, ...] = (16, 20, 24, 28, 32, 40, 48, 56, 64)


def auto_size_for(common: int) -> tuple[int, str]:
    """The size "auto" trains pictures at whose common short side is ``common`` px, and why."""
    fitting = [s for s in AUTO_SIZES if s <= common]
    chosen = fitting[-1] if fitting else AUTO_SIZES[0]
    if chosen == common:
        return chosen, f"size {chosen} px: the pictures' common short side"
    why = ("the largest Chorus picks by itself; give a size to go higher" if common > AUTO_SIZES[-1]
           else "rounded to a size every member takes")
    return chosen, f"size {chosen} px: the pictures' common short side is {common} px ({why})"


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """(N,H,W,C) uint8 with C in {1,3,4} → the run's channel count (alpha composited over white when
    it is dropped; opaque when it is added)."""
    have = images.shape[-1]
    if have == channels:
        return images
    if have == 4 or channels == 4:
        return from_rgba(to_rgba(images), channels)
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    return _luma(images)


def to_rgba(images: np.ndarray) -> np.ndarray:
    """(N,H,W,C) uint8, C in {1,3,4} → opaque (N,H,W,4) unless it had alpha."""
    have = images.shape[-1]
    if have == 4:
        return images
    rgb = np.repeat(images, 3, axis=-1) if have == 1 else images
    alpha = np.full(images.shape[:-1] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=-1)


def from_rgba(rgba: np.ndarray, channels: int) -> np.ndarray:
    """Straight-alpha (N,H,W,4) uint8 → 4 (as is), 3 (over white) or 1 (over white, then luma)."""
    if channels == 4:
        return rgba
    out = np.empty(rgba.shape[:-1] + (channels,), dtype=np.uint8)
    for start in range(0, len(rgba), _CHUNK):
        part = rgba[start:start + _CHUNK].astype(np.float32)
        alpha = part[..., 3:] / 255.0
        rgb = part[..., :3] * alpha + 255.0 * (1.0 - alpha)
        flat = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        out[start:start + _CHUNK] = flat if channels == 3 else _luma(flat)
    return out


def _luma(rgb: np.ndarray) -> np.ndarray:
    grey = np.tensordot(rgb.astype(np.float32), _LUMA, axes=([-1], [0]))
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def choose_channels(rgba: np.ndarray) -> tuple[int, str]:
    """What "auto" trains in, and why: 4 when most pictures show transparency, 1 when (nearly) every
    picture is grey where it is visible, else 3."""
    n = len(rgba)
    transparent = grey = 0
    for start in range(0, n, _CHUNK):
        part = rgba[start:start + _CHUNK]
        visible = part[..., 3] > 0
        transparent += int((part[..., 3] < 255).any(axis=(1, 2)).sum())
        spread = part[..., :3].max(axis=-1).astype(np.int16) - part[..., :3].min(axis=-1)
        grey += int((np.where(visible, spread, 0) <= GREY_SPREAD).all(axis=(1, 2)).sum())
    if transparent > TRANSPARENT_SHARE * n:
        return 4, f"{CHANNEL_NAMES[4]} (4 channels): {transparent:,} of {n:,} pictures have transparent pixels"
    if grey >= GREY_SHARE * n:
        return 1, f"{CHANNEL_NAMES[1]} (1 channel): {grey:,} of {n:,} pictures are grey"
    why = f"{n - grey:,} of {n:,} pictures are in colour"
    if transparent:
        why += f"; {transparent:,} with transparency (too few to keep it: choose 4 channels to)"
    return 3, f"{CHANNEL_NAMES[3]} (3 channels): {why}"


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
        if c == 4:  # premultiplied while resampling: invisible pixels' colour must not bleed in
            batch[:, :3] *= batch[:, 3:] / 255.0
        batch = F.interpolate(batch, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        batch = batch[:, :, top:top + size, left:left + size]
        if c == 4:
            alpha = batch[:, 3:].clamp(0, 255)
            batch[:, :3] = torch.where(alpha > INVISIBLE_LEVEL, batch[:, :3] * 255.0 / alpha.clamp_min(1e-6), 0.0)
        out[start:start + chunk] = batch.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def prepare(images: np.ndarray, size: int, channels: int | str) -> tuple[np.ndarray, str]:
    """Any (N,H,W) / (N,H,W,C) uint8 array → (N,size,size,channels) uint8, and how "auto" chose
    the channels ("" when they were given)."""
    images = to_nhwc(images)
    note = ""
    if channels == "auto":
        spread = images[:: max(1, len(images) // (4 * _CHUNK))]  # an even spread of the set is enough
        channels, note = choose_channels(to_rgba(spread))
    return resize_center_crop(convert_channels(images, int(channels)), size), note


def fingerprint(images: np.ndarray, labels: np.ndarray | None) -> str:
    """A short content hash that says whether a resumed run sees the same data."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(images.shape).encode())
    digest.update(np.ascontiguousarray(images).data)
    if labels is not None:
        digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()
