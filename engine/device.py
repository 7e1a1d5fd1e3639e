"""Device choice: CUDA, then MPS, then CPU; a clear message when the asked-for one is missing."""
from __future__ import annotations

import torch

from engine.errors import UserError


def choose_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference.startswith("cuda:") and preference[5:].isdigit():  # one GPU of several (distributed)
        if int(preference[5:]) >= torch.cuda.device_count():
            raise UserError(f"device {preference} was asked for but {torch.cuda.device_count()} GPU(s) exist")
        return torch.device(preference)
    if preference == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but Apple's MPS is not available; use --device auto or cpu")
    if preference not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {preference!r}; use auto, cpu, cuda or mps")
    return torch.device(preference)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device or host allocation failure that a smaller batch may avoid."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_cached_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back after an out-of-memory error, before retrying."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
