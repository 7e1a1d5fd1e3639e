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


def grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (n, H, W, C) uint8 into one (rows·H, cols·W, C) image with a dark gutter (a transparent
    one for RGBA, so a sheet of sprites keeps its background see-through)."""
    n, h, w, c = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 0 if c == 4 else 24, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = images[i]
    return out


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
