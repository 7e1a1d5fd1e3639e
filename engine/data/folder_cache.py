"""The decoded cache of an image folder: a second read of the same folder at the same size skips decoding.

One entry per folder and size in the user's cache dir (engine/cache.py): ``pixels.npy`` holds every
loaded picture as (N, size, size, 4) uint8 RGBA, ``index.json`` each file's relative path, byte size
and modification time (nanoseconds), with the row its pixels are in, or the reason it was skipped.
A file whose size or time changed is decoded again, and only that file.  Nothing is pickled; a
damaged or unwritable cache is ignored (slower, same pixels). The least recently used entries go
when more than ``KEEP`` are kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cache import cache_dir

#: Bumped whenever decoding changes what pixels a file gives (old entries are then never read).
DECODER_VERSION = 2
KEEP = 8  # folder entries kept (each folder × size is one)
MAX_BYTES = 4 * 2**30  # larger decoded sets are not cached


@dataclass(frozen=True)
class DecodedEntry:
    path: str        # relative, "/"-separated
    size: int        # bytes on disk when decoded
    mtime_ns: int
    reason: str = ""  # why it was skipped ("" when loaded)
    note: str = ""    # e.g. "animated"
    row: int = -1     # its row in pixels.npy when loaded


class FolderCache:
    """Decoded pictures of one folder at one size."""

    def __init__(self, root: str, size: int, base: Path | None = None):
        key = f"{os.path.abspath(root)}\0{size}\0{DECODER_VERSION}"
        self.folder = (base or cache_dir() / "folders") / hashlib.blake2b(key.encode("utf-8", "surrogateescape"),
                                                                         digest_size=12).hexdigest()
        self._pixels: np.ndarray | None = None

    def entries(self) -> dict[str, DecodedEntry]:
        """What the cache holds, by relative path; {} when there is nothing usable."""
        try:
            index = json.loads((self.folder / "index.json").read_text(encoding="utf-8"))
            self._pixels = np.load(self.folder / "pixels.npy", mmap_mode="r", allow_pickle=False)
            entries = {e["path"]: DecodedEntry(**e) for e in index["entries"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        if any(e.row >= len(self._pixels) for e in entries.values()):
            return {}
        os.utime(self.folder)  # most recently used
        return entries

    def pixels(self, entry: DecodedEntry) -> np.ndarray | None:
        return None if entry.row < 0 or self._pixels is None else np.asarray(self._pixels[entry.row])

    def store(self, entries: list[DecodedEntry], pixels: list[np.ndarray | None]) -> None:
        """Replace the cache with these outcomes (pixels[i] None for a skipped file)."""
        loaded = [p for p in pixels if p is not None]
        if not loaded or sum(p.nbytes for p in loaded) > MAX_BYTES:
            return
        rows, index = 0, []
        for entry, picture in zip(entries, pixels):
            index.append({**entry.__dict__, "row": rows if picture is not None else -1})
            rows += picture is not None
        temp = self.folder.with_name(self.folder.name + ".tmp")
        try:
            shutil.rmtree(temp, ignore_errors=True)
            temp.mkdir(parents=True)
            np.save(temp / "pixels.npy", np.stack(loaded), allow_pickle=False)
            (temp / "index.json").write_text(json.dumps({"version": DECODER_VERSION, "entries": index}),
                                             encoding="utf-8")
            self._pixels = None  # the memory map of the old file is let go before it is replaced
            old = self.folder.with_name(self.folder.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                self.folder.rename(old)
            temp.rename(self.folder)
            shutil.rmtree(old, ignore_errors=True)
            _evict(self.folder.parent)
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)


def _evict(parent: Path) -> None:
    entries = sorted((p for p in parent.iterdir() if p.is_dir() and "." not in p.name),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[KEEP:]:
        shutil.rmtree(stale, ignore_errors=True)
