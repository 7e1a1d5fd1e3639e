"""`bench photos`: reading a folder of large phone-style JPEGs, the first time and again from the cache.

Writes ``--count`` 12-megapixel JPEGs (4000×3000; 12 distinct pictures, noise over gradients and
shapes, quality 90, repeated under different names: each file is still decoded on its own) into the
cache once, then times, side by side in one run:
- the first read, decoded on every core (the decoded cache emptied first),
- the second read, from the decoded cache,
- decoding a sample of the files on one thread, for the speed-up of using every core.
The files sit in the OS page cache after they are written: the first read measures decoding, not
the disk. Prints a table and writes JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from engine.cache import cache_dir
from engine.config import DataConfig
from engine.data.folder import load_image_folder
from engine.data.folder_cache import FolderCache
from engine.data.sources import load_data

WIDTH, HEIGHT = 4000, 3000
DISTINCT = 12
ONE_THREAD_SAMPLE = 48


def make_photos(folder: Path, count: int) -> float:
    """Write the JPEGs (once); returns the seconds it took (0 when they were there)."""
    marker = folder / ".complete"
    if marker.exists():
        return 0.0
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    encoded = []
    for index in range(DISTINCT):
        rng = np.random.default_rng(index)
        yy, xx = np.mgrid[0:HEIGHT:4, 0:WIDTH:4].astype(np.float32)
        base = np.stack([(xx * rng.uniform(0.02, 0.06) + yy * rng.uniform(0.01, 0.05) + rng.uniform(0, 255)) % 255
                         for _ in range(3)], axis=-1)
        small = Image.fromarray(base.astype(np.uint8)).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
        pixels = np.asarray(small).astype(np.int16)
        pixels += rng.normal(0, 10, size=pixels.shape).astype(np.int16)
        path = folder / f"distinct-{index}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        encoded.append(path.read_bytes())
        path.unlink()
    for index in range(count):
        (folder / f"IMG_{index:05d}.jpg").write_bytes(encoded[index % DISTINCT])
    marker.write_text("")
    return time.perf_counter() - started


def main(args) -> int:
    count = args.count or 1000
    size = args.size if isinstance(args.size, int) else 64
    folder = cache_dir() / "bench" / f"photos-{count}"
    made = make_photos(folder, count)
    megabytes = sum(p.stat().st_size for p in folder.glob("*.jpg")) / 2**20
    print(f"{count} JPEGs of {WIDTH}×{HEIGHT} ({megabytes:,.0f} MB) in {folder}"
          + (f", written in {made:.0f} s" if made else ""), file=sys.stderr)
    config = DataConfig.from_dict({"source": str(folder), "size": size, "channels": 3})
    shutil.rmtree(FolderCache(str(folder), size).folder, ignore_errors=True)

    started = time.perf_counter()
    first = load_data(config)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    second = load_data(config)
    second_s = time.perf_counter() - started
    assert np.array_equal(first.images, second.images)

    sample = folder / ".one-thread-sample"
    shutil.rmtree(sample, ignore_errors=True)
    sample.mkdir()
    for path in sorted(folder.glob("*.jpg"))[:ONE_THREAD_SAMPLE]:
        os.link(path, sample / path.name)
    started = time.perf_counter()
    load_image_folder(sample, size, 3, workers=1)
    one_thread_per_file = (time.perf_counter() - started) / ONE_THREAD_SAMPLE
    started = time.perf_counter()
    load_image_folder(sample, size, 3)
    all_cores_per_file = (time.perf_counter() - started) / ONE_THREAD_SAMPLE
    shutil.rmtree(sample, ignore_errors=True)

    result = {"count": count, "megapixels": WIDTH * HEIGHT / 1e6, "size": size, "cores": os.cpu_count(),
              "first_read_s": first_s, "second_read_s": second_s, "first_over_second": first_s / second_s,
              "one_thread_ms_per_file": 1000 * one_thread_per_file,
              "all_cores_ms_per_file": 1000 * all_cores_per_file,
              "cores_speedup": one_thread_per_file / all_cores_per_file}
    print(f"| read | seconds | ms per file |\n|---|---|---|\n"
          f"| first (decoded on {os.cpu_count()} cores) | {first_s:.1f} | {1000 * first_s / count:.1f} |\n"
          f"| second (decoded cache) | {second_s:.2f} | {1000 * second_s / count:.2f} |\n"
          f"| {ONE_THREAD_SAMPLE} files on one thread | {one_thread_per_file * ONE_THREAD_SAMPLE:.1f} | "
          f"{1000 * one_thread_per_file:.1f} |\n"
          f"| the same {ONE_THREAD_SAMPLE} on every core | {all_cores_per_file * ONE_THREAD_SAMPLE:.1f} | "
          f"{1000 * all_cores_per_file:.1f} |\n\n"
          f"every core ÷ one thread: {result['cores_speedup']:.2f}×; second read {second_s:.2f} s")
    out = Path(args.out or "bench-photos.json")
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0
