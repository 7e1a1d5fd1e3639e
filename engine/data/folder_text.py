"""Text for a folder's load report: file names made printable, shortened, listed; OS and Pillow
errors in a few plain words (engine/data/folder.py says what happened to each file with them)."""
from __future__ import annotations

import errno
import re
from typing import Iterable, Protocol

SUMMARY_NAME_WIDTH = 60


class Problem(Protocol):
    path: str
    reason: str


def printable(name: str) -> str:
    """A file name as safe, one-line text: undecodable bytes and control characters escaped."""
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates outside the surrogateescape range (Windows)
        text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shorten(text: str, width: int = SUMMARY_NAME_WIDTH) -> str:
    if len(text) <= width:
        return text
    keep = (width - 3) // 2
    return text[:keep] + "..." + text[len(text) - keep :]


def short(text: str, width: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def list_problems(skipped: Iterable[Problem], limit: int) -> str:
    items = list(skipped)
    shown = ", ".join(f"{shorten(s.path)} ({s.reason})" for s in items[:limit])
    if len(items) > limit:
        shown += f", and {len(items) - limit} more"
    return shown


def os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "missing file or broken link"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    message = str(exc)
    if "truncated" in message.lower():
        return "truncated image file"
    if exc.errno is not None and exc.strerror:
        return short(f"cannot read file ({exc.strerror.lower()})")
    # Pillow's own decoding errors carry no errno: "broken data stream ...", "cannot identify ...".
    return short(f"corrupt image ({message})" if message else "corrupt image")


def bomb_detail(exc: BaseException, max_pixels: int) -> str:
    # Pillow: "Image size (N pixels) exceeds limit of M pixels, could be decompression bomb DOS attack."
    found = re.match(r"Image size \((\d+) pixels\) exceeds limit of (\d+) pixels", str(exc))
    if not found:
        return "possible decompression bomb"
    pixels, pillow_limit = int(found.group(1)), int(found.group(2))
    if pixels > max_pixels:
        return f"{pixels:,} pixels > limit of {max_pixels:,}"
    return f"{pixels:,} pixels > safety limit of {pillow_limit:,}"


def classes_note(loaded: list[tuple[str, ...]]) -> str:
    """Said when >= 2 subfolders hold images but loose ones beside them keep the subfolders from
    being classes (a stray file would otherwise silently drop every label)."""
    loose = [parts[0] for parts in loaded if len(parts) < 2]
    folders = {parts[0] for parts in loaded if len(parts) >= 2}
    if not loose or len(folders) < 2:
        return ""
    noun = "image lies" if len(loose) == 1 else "images lie"
    return (f"No classes: {len(loose)} {noun} outside the {len(folders)} subfolders (e.g. "
            f"{printable(loose[0])}); move them into one to train with the subfolders as classes.")
