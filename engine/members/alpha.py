"""How a member holds transparency while it learns: straight or premultiplied alpha.

Chorus's images are straight-alpha RGBA everywhere outside a member (files, the gallery, the
evaluation): a pixel's colour is its full colour whatever its opacity, and black where nothing shows.
A soft edge is then a jump: full colour at opacity 1/255, black at 0. A generator that learns straight
alpha must draw that jump exactly and a discriminator can tell real from fake by it, although nobody
sees it. Premultiplied (colour × opacity) has no jump: an edge fades to black with its opacity, and
colour a member gets wrong matters only as much as it shows. A member that ``can_premultiply`` learns
in premultiplied alpha when its ``alpha`` parameter says so (RGBA data only) and converts at its
edges: training images and images it is given (to score, vary or refine) on the way in, its samples
on the way out. Measured: docs/quality.md § Premultiplied alpha.
"""
from __future__ import annotations

import torch

from engine.config import Param
from engine.data.preprocess import INVISIBLE_LEVEL

NEW_RUN_ALPHA = "premultiplied"  # what "auto" settles to in a new run on RGBA data (measured: docs/quality.md)
# below this opacity a straight pixel has no colour, as a resized picture has none (the data's own
# threshold, engine/data/preprocess.py, in [0, 1]); dividing by a smaller opacity would only amplify noise
INVISIBLE = INVISIBLE_LEVEL / 255

ALPHA_PARAM = Param(
    "alpha", "auto", choices=("auto", "straight", "premultiplied"),
    help="RGBA only: learn colour multiplied by opacity (premultiplied), so soft edges fade instead of "
         "jumping to black where nothing shows; auto: " + NEW_RUN_ALPHA + " for a new run")


def settle_alpha(params: dict, channels: int) -> dict:
    """``params`` with an "auto" ``alpha`` settled for a new run on images of ``channels``: the
    premultiplied default on RGBA, straight (nothing to multiply) otherwise."""
    settled = dict(params)
    if settled.get("alpha", "auto") == "auto":
        settled["alpha"] = NEW_RUN_ALPHA if channels == 4 else "straight"
    return settled


def learns_premultiplied(params: dict, channels: int) -> bool:
    """A member learns premultiplied alpha: RGBA data and its run says so ("auto" left in a run.json
    is a run made before the parameter existed: it learnt straight alpha)."""
    return channels == 4 and params.get("alpha", "auto") == "premultiplied"


def premultiply(images: torch.Tensor) -> torch.Tensor:
    """(n, 4, H, W) straight RGBA in [-1, 1] → premultiplied, same range and layout."""
    opacity = (images[:, 3:] + 1) / 2
    return torch.cat([((images[:, :3] + 1) * opacity) - 1, images[:, 3:]], dim=1)


def unpremultiply(images: torch.Tensor) -> torch.Tensor:
    """(n, 4, H, W) premultiplied RGBA in [-1, 1] → straight: colour divided by opacity, clamped
    (a generator may draw more colour than its opacity allows), none where nothing shows."""
    opacity = ((images[:, 3:] + 1) / 2).clamp(0, 1)
    colour = ((images[:, :3] + 1) / 2).clamp(0, 1)
    straight = torch.where(opacity >= INVISIBLE, (colour / opacity.clamp_min(INVISIBLE)).clamp(max=1),
                           torch.zeros_like(colour))
    return torch.cat([straight * 2 - 1, opacity * 2 - 1], dim=1)
