"""Image grids and PNG export; exported PNGs carry their parameters as JSON in a text chunk."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from engine.data.dataset import to_uint8
from engine.errors import UserError

METADATA_KEY = "chorus"


def to_nhwc_uint8(images: torch.Tensor) -> np.ndarray:
    """(n, C, H, W) float in [-1, 1] → (n, H, W, C) uint8 numpy, an owned CPU copy."""
    return to_uint8(images).permute(0, 2, 3, 1).cpu().numpy().copy()


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2, margin: int | None = None) -> np.ndarray:
    """Tile (n, H, W, C) uint8 into one (rows·H, cols·W, C) image with a dark gutter (a transparent
    one for RGBA, so a sheet of sprites keeps its background see-through); ``pad`` between images,
    ``margin`` around them (default: ``pad``)."""
    n, h, w, c = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    margin = pad if margin is None else margin
    rows = max(1, math.ceil(n / columns))
    out = np.full((rows * (h + pad) - pad + 2 * margin, columns * (w + pad) - pad + 2 * margin, c),
                  0 if c == 4 else 24, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = margin + r * (h + pad), margin + col * (w + pad)
        out[top: top + h, left: left + w] = images[i]
    return out


def sprite_sheet(images: np.ndarray, columns: int, spacing: int = 0) -> np.ndarray:
    """A sprite sheet: ``columns`` images a row, ``spacing`` pixels between them and none around;
    the gaps are transparent for RGBA images (``grid``)."""
    if columns < 1 or spacing < 0:
        raise UserError(f"a sprite sheet needs columns ≥ 1 and spacing ≥ 0, got {columns} and {spacing}")
    return grid(images, columns, spacing, margin=0)


ANIMATIONS = (".webp", ".gif")


def save_animation(path: Path, frames: np.ndarray, frame_ms: int = 150, bounce: bool = True) -> Path:
    """(n, H, W, C) uint8 frames as an animated WebP (lossless, alpha kept) or GIF (alpha as one
    transparent colour), looping; ``bounce`` plays them forwards then back. Neither format carries
    the PNG's text chunk, so the recipe is not in it (export the strip as PNG for that)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATIONS:
        raise UserError(f"an animation is saved as .webp or .gif, got {path.name}")
    order = list(range(len(frames))) + (list(range(len(frames) - 2, 0, -1)) if bounce else [])
    pictures = [Image.fromarray(frames[i][..., 0] if frames.shape[-1] == 1 else frames[i]) for i in order]
    if suffix == ".webp" and pictures[0].mode == "L":
        pictures = [picture.convert("RGB") for picture in pictures]
    options = {"lossless": True} if suffix == ".webp" else {"disposal": 2}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        pictures[0].save(temp, format=suffix[1:].upper(), save_all=True, append_images=pictures[1:],
                         duration=frame_ms, loop=0, **options)
        os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def save_singles(folder: Path, images: np.ndarray, recipes: list[dict[str, Any]], stem: str) -> list[Path]:
    """One PNG per (H, W, C) image in ``folder`` (``stem``-001.png…), each with its own recipe."""
    width = max(3, len(str(len(images))))
    return [save_png(Path(folder) / f"{stem}-{i + 1:0{width}d}.png", image, recipe)
            for i, (image, recipe) in enumerate(zip(images, recipes))]


def save_png(path: Path, image: np.ndarray, metadata: dict[str, Any] | None = None) -> Path:
    """Write an (H, W, C) uint8 image; ``metadata`` goes into an iTXt chunk as JSON."""
    path = Path(path)
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        info.add_itxt(METADATA_KEY, json.dumps(metadata, sort_keys=True))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.tmp")
        picture.save(temp, format="PNG", pnginfo=info)
        os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def read_png_metadata(path: Path) -> dict[str, Any]:
    """The parameters embedded by ``save_png``; a clear message when absent or damaged."""
    try:
        with Image.open(path) as picture:
            picture.load()
            text = picture.text.get(METADATA_KEY)  # type: ignore[attr-defined]
    except FileNotFoundError:
        raise UserError(f"PNG not found: {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} is not a readable PNG: {exc}") from None
    if text is None:
        raise UserError(f"{path} carries no Chorus parameters (was it exported by Chorus?)")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"the Chorus parameters in {path} are damaged: {exc}") from None
    if not isinstance(metadata, dict):
        raise UserError(f"the Chorus parameters in {path} are damaged: not an object")
    return metadata
