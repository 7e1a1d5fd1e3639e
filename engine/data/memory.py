"""Host memory: refuse a dataset that would not fit at the chosen size before allocating it.

The prepared images live twice in host memory for a moment (the uint8 array, then the training
tensor made from it when the device is the CPU), so the estimate is twice N × size × size ×
channels bytes. psutil is not a dependency: Linux says MemAvailable in /proc/meminfo; elsewhere
os.sysconf may know the free pages; when neither does, the check is skipped.
"""
from __future__ import annotations

import os

from engine.errors import UserError

COPIES = 2


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation without swapping, or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def dataset_bytes(count: int, size: int, channels: int) -> int:
    return count * size * size * channels


def check_fits(count: int, size: int, channels: int, what: str) -> None:
    """UserError naming the size the data would take when it would not fit in available memory."""
    available = available_memory()
    if available is None:
        return
    needed = COPIES * dataset_bytes(count, size, channels)
    if needed > available:
        raise UserError(f"{what}: {count:,} images at {size}×{size}×{channels} would take {_size(needed)} of "
                        f"memory, but only {_size(available)} is available; choose a smaller size, "
                        "1 channel or fewer images")


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"
