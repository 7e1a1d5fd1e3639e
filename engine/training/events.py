"""Events the trainer emits: small picklable values (floats, strings, uint8 numpy arrays)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StepLogged:
    member: str
    step: int
    losses: dict[str, float]
    images_per_s: float
    elapsed: float          # seconds of training in this run, resumes included


@dataclass(frozen=True)
class PreviewReady:
    member: str
    step: int
    images: np.ndarray = field(repr=False)  # (n, H, W, C) uint8, fixed seed
    diversity: float = float("nan")  # ÷ the data's (engine/training/diagnostics.py); NaN: not measured
    sharpness: float = float("nan")
    warning: str = ""               # said when a ratio has stayed low (collapse, blur)


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True)
class MemberFailed:
    """A member's step went wrong (non-finite loss, out of memory); the others keep training."""

    member: str
    step: int
    message: str
    action: str = ""        # what the trainer did: "rolled back", "smaller batch" or "paused"


@dataclass(frozen=True)
class SaveFailed:
    """A checkpoint, log line or preview could not be written; training goes on and saves again later."""

    step: int
    path: str
    message: str


@dataclass(frozen=True)
class Finished:
    step: int
    reason: str             # "done", "stopped", or "failed" (every member paused after failures)
    save_error: str = ""    # why the final state could not be saved ("" when it was, or nothing was new)


Event = StepLogged | PreviewReady | CheckpointSaved | MemberFailed | SaveFailed | Finished
