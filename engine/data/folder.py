"""Image-folder data source: load every usable picture under a folder, skip (and report) the rest.

A user's folder can hold anything: truncated downloads, HTML pages saved as ``.png``, 16-bit scans,
CMYK print files, phone photos with EXIF rotation, decompression bombs, unreadable files, names that
are not valid UTF-8, symlink loops, FIFOs, HEIC photos, animated GIFs.  ``load_image_folder`` never
raises for a single bad file: it records it in ``FolderReport.skipped`` with a short human reason and
goes on; every file whose suffix says "image" is either loaded or listed there.  It raises
``UserError`` only when nothing usable is found (or the arguments are wrong).

Every picture is decoded once to straight-alpha RGBA at the asked size (on every core, and kept in a
decoded cache: engine/data/folder_cache.py), then turned into the run's channels: 4 keeps the alpha,
3 and 1 composite it over white.  ``channels="auto"`` chooses from the pictures themselves.
"""

from __future__ import annotations

import mimetypes
import os
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.data.folder_cache import DecodedEntry, FolderCache
from engine.data.folder_text import bomb_detail, classes_note, list_problems, os_reason, printable, short, shorten
from engine.data.memory import check_fits
from engine.data.preprocess import AUTO_SIZES, auto_size_for, choose_channels, from_rgba
from engine.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderImages",
    "FolderReport",
    "SkippedFile",
    "auto_size",
    "load_image_folder",
]

#: File name extensions (lower case) that are loaded; matching is case-insensitive.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

#: Image suffixes Chorus does not decode: such files are listed as skipped with this advice, never
#: ignored.  Any other suffix that the platform's MIME table calls ``image/*`` is listed the same way.
OTHER_IMAGE_SUFFIXES: tuple[str, ...] = (
    ".heic", ".heif", ".avif", ".jxl", ".jp2", ".j2k", ".svg", ".svgz", ".psd", ".psb", ".xcf", ".ico",
    ".icns", ".tga", ".pcx", ".ppm", ".pgm", ".pbm", ".pnm", ".exr", ".hdr", ".dds", ".raw", ".dng",
    ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".srw", ".pef", ".kra", ".ora", ".jfif",
)

# Pillow decoders we allow.  Files are identified by content, so a GIF saved under one of the
# extensions above still loads ("JPEG" also opens MPO multi-picture camera files); other formats
# (EPS, which runs Ghostscript, and the long tail of rarely-used decoders) are refused as
# "not an image".
_ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "BMP", "DIB", "GIF", "TIFF")

#: Channel choices: 1 grey, 3 colour, 4 colour + transparency, or "auto" (what the pictures are).
CHANNEL_CHOICES: tuple[int, ...] = (1, 3, 4)

_AUTO_SIZE_SAMPLE = 256  # headers read to find the folder's common short side

_SUMMARY_MAX_NAMES = 10
_ERROR_MAX_PROBLEMS = 3

Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True)
class SkippedFile:
    """A file (or sub-folder) that was not loaded."""

    path: str  # relative to the folder root, printable (non-UTF-8 bytes shown as \\xNN escapes)
    reason: str  # short human reason, e.g. "truncated image file"


@dataclass(frozen=True)
class FolderReport:
    """What happened while loading a folder."""

    root: str
    loaded: int
    skipped: tuple[SkippedFile, ...]
    classes_note: str = ""  # why subfolders were not taken as classes, when that looks unintended
    notes: tuple[str, ...] = ()  # other things said about the load (first frames of GIFs, channels)

    def summary(self) -> str:
        noun = "image" if self.loaded == 1 else "images"
        head = f"Loaded {self.loaded} {noun} from {self.root}"
        if not self.skipped:
            text = head + "."
        else:
            text = f"{head}; skipped {len(self.skipped)}: {list_problems(self.skipped, _SUMMARY_MAX_NAMES)}"
        extra = [self.classes_note] if self.classes_note else []
        return "\n".join([text, *self.notes, *extra])


@dataclass(frozen=True)
class FolderImages:
    """Loaded pictures, ready for training."""

    images: np.ndarray  # uint8, (N, size, size, channels)
    labels: np.ndarray | None  # int64 (N,) when every image sits in one of >= 2 class subfolders
    class_names: tuple[str, ...]  # sorted subfolder names (printable), () when labels is None
    report: FolderReport
    paths: tuple[str, ...] = ()  # printable relative path of each loaded image, same order as images
    channels_note: str = ""  # how "auto" chose the channels, "" when they were given
    cached: int = 0  # how many pictures came from the decoded cache instead of being decoded


class _Skip(Exception):
    """Internal: this file is not usable, for the given human reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Decoded:
    """One file's outcome: its RGBA pixels, or the reason it was skipped; ``note`` e.g. "animated"."""

    pixels: np.ndarray | None
    reason: str = ""
    note: str = ""


# --------------------------------------------------------------------------------------------
# public entry point


def load_image_folder(
    root: str | os.PathLike,
    size: int,
    channels: int | str,
    max_pixels: int = 64_000_000,
    progress: Progress | None = None,
    cache: FolderCache | None = None,
    workers: int | None = None,
) -> FolderImages:
    """Load every image under ``root`` (recursively) as a ``size`` x ``size`` square.

    Each picture is EXIF-rotated, decoded to straight-alpha RGBA (colour under fully transparent
    pixels set to black, so a network learns nothing there), resized so its short side is ``size``
    and centre-cropped, then given ``channels``: 4 keeps the alpha, 3 (RGB) and 1 (grey) composite
    it over white; "auto" picks what the pictures are (engine/data/preprocess.py).  Files larger
    than ``max_pixels`` pixels are refused before decoding.  ``cache``: decoded pictures kept from
    an earlier read (only changed files are decoded again); ``workers``: decoding threads (every
    core by default).
    """
    size = _check_int("Image size", size, minimum=8)
    if channels != "auto" and (isinstance(channels, bool) or channels not in CHANNEL_CHOICES):
        raise UserError(f"Channels must be 1 (grey), 3 (colour), 4 (colour + transparency) or auto, "
                        f"not {channels!r}.")
    max_pixels = _check_int("Maximum pixels per image", max_pixels, minimum=1)
    root_str, shown_root, root_stat = _open_root(root)

    candidates, skipped = _walk(root_str, root_stat)
    if not candidates:
        ext_list = ", ".join(IMAGE_EXTENSIONS)
        message = f"No images ({ext_list}) found in {shown_root}"
        if skipped:
            message += f"; could not read: {list_problems(skipped, _ERROR_MAX_PROBLEMS)}"
        raise UserError(message)

    check_fits(len(candidates), size, 4 if channels == "auto" else channels, shown_root)
    try:
        rgba = np.empty((len(candidates), size, size, 4), dtype=np.uint8)
    except MemoryError:
        raise UserError(
            f"Not enough memory for {len(candidates)} images of {size}x{size}; "
            "choose a smaller image size or fewer images."
        ) from None

    outcomes, cached = _decode_all(root_str, candidates, size, max_pixels, progress, cache, workers)
    loaded_parts: list[tuple[str, ...]] = []
    animated: list[str] = []
    for parts, outcome in zip(candidates, outcomes):
        shown = printable(os.path.join(*parts))
        if outcome.pixels is None:
            skipped.append(SkippedFile(shown, outcome.reason))
            continue
        rgba[len(loaded_parts)] = outcome.pixels
        loaded_parts.append(parts)
        if outcome.note == "animated":
            animated.append(shown)

    skipped_t = tuple(sorted(skipped, key=lambda s: s.path))
    if not loaded_parts:
        raise UserError(
            f"None of the {len(candidates)} image files in {shown_root} could be read; "
            f"first problems: {list_problems(skipped_t, _ERROR_MAX_PROBLEMS)}"
        )
    if len(loaded_parts) < len(candidates):
        # Shrink in place (no copy of the loaded data); nothing else references the buffer.
        rgba.resize((len(loaded_parts), size, size, 4), refcheck=False)

    channels_note = ""
    if channels == "auto":
        channels, channels_note = choose_channels(rgba)
    images = from_rgba(rgba, int(channels))

    labels, class_names = _labels(loaded_parts)
    notes = []
    if animated:
        noun = "animation" if len(animated) == 1 else "animations"
        notes.append(f"First frame used of {len(animated)} {noun} (GIF, WebP or TIFF with several frames), "
                     f"e.g. {shorten(animated[0])}.")
    report = FolderReport(root=shown_root, loaded=len(loaded_parts), skipped=skipped_t,
                          classes_note=classes_note(loaded_parts) if labels is None else "", notes=tuple(notes))
    paths = tuple(printable(os.path.join(*parts)) for parts in loaded_parts)
    return FolderImages(images=images, labels=labels, class_names=class_names, report=report, paths=paths,
                        channels_note=channels_note, cached=cached)


def auto_size(root: str | os.PathLike) -> tuple[int, str]:
    """The size "auto" trains at: the folder's common (median) short side, rounded down to one of
    AUTO_SIZES (at most 64 px), from the headers of up to 256 files spread over the folder."""
    root_str, shown_root, root_stat = _open_root(root)
    candidates, _ = _walk(root_str, root_stat)
    step = max(1, len(candidates) // _AUTO_SIZE_SAMPLE)
    sides = []
    for parts in candidates[::step]:
        try:
            with warnings.catch_warnings(), _open_file(os.path.join(root_str, *parts)) as fh:
                warnings.simplefilter("ignore")
                with Image.open(fh, formats=_ALLOWED_FORMATS) as image:
                    sides.append(min(image.size))
        except Exception:  # noqa: BLE001 - a bad file is reported by the load itself
            continue
    if not sides:  # nothing readable: the load that follows says why, file by file
        return AUTO_SIZES[0], ""
    return auto_size_for(int(np.median(sides)))


def _open_root(root: str | os.PathLike) -> tuple[str, str, os.stat_result]:
    try:
        root_str = os.fsdecode(os.fspath(root))
    except TypeError:
        raise UserError(f"Image folder must be a path, not {type(root).__name__}.") from None
    shown_root = printable(root_str)
    if not root_str:
        raise UserError("Image folder not given (empty path).")
    try:
        root_stat = os.stat(root_str)
    except FileNotFoundError:
        raise UserError(f"Image folder not found: {shown_root}") from None
    except OSError as exc:
        raise UserError(f"Cannot open image folder {shown_root}: {os_reason(exc)}") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        raise UserError(f"{shown_root} is not a folder")
    return root_str, shown_root, root_stat


def _decode_all(root: str, candidates: list[tuple[str, ...]], size: int, max_pixels: int,
                progress: Progress | None, cache: FolderCache | None, workers: int | None
                ) -> tuple[list[_Decoded], int]:
    """Every candidate's outcome, in order: from the cache when its file is unchanged, else decoded
    on a pool of threads (Pillow releases the GIL while it decodes and resizes)."""
    total = len(candidates)
    outcomes: list[_Decoded | None] = [None] * total
    stats: list[tuple[int, int] | None] = [None] * total
    todo: list[int] = []
    hits = 0
    entries = cache.entries() if cache is not None else {}
    for index, parts in enumerate(candidates):
        rel = "/".join(parts)
        try:
            st = os.stat(os.path.join(root, *parts))
            stats[index] = (st.st_size, st.st_mtime_ns)
        except OSError:
            pass
        entry = entries.get(rel)
        if entry is not None and stats[index] == (entry.size, entry.mtime_ns):
            outcomes[index] = _Decoded(cache.pixels(entry), entry.reason, entry.note)
            hits += 1
        else:
            todo.append(index)
    done = total - len(todo)
    if progress:
        progress(done, total)

    def work(index: int) -> _Decoded:
        return _load_one(os.path.join(root, *candidates[index]), size, max_pixels)

    threads = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if todo:
        pool = ThreadPoolExecutor(threads, thread_name_prefix="chorus-decode") if threads > 1 else _Serial()
        try:
            for index, outcome in zip(todo, pool.map(work, todo)):
                outcomes[index] = outcome
                done += 1
                if progress and (done % 16 == 0 or done == total):
                    progress(done, total)  # may raise to cancel: the files not started are dropped
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    result = [o for o in outcomes if o is not None]
    if cache is not None and todo:
        cache.store([DecodedEntry("/".join(parts), *(stats[i] or (-1, -1)), outcomes[i].reason, outcomes[i].note)
                     for i, parts in enumerate(candidates)], [o.pixels for o in result])
    return result, hits


class _Serial:
    """A stand-in for a one-thread pool: decodes in the calling thread (tests, one core)."""

    @staticmethod
    def map(function, items):
        return map(function, items)

    @staticmethod
    def shutdown(wait: bool, cancel_futures: bool) -> None:
        return None


# --------------------------------------------------------------------------------------------
# walking


def _is_image_suffix(name: str) -> bool:
    """Loaded or not, does the name say "picture"?  (Unloaded ones are reported, never ignored.)"""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in IMAGE_EXTENSIONS or suffix in OTHER_IMAGE_SUFFIXES:
        return True
    guessed = mimetypes.guess_type("x" + suffix, strict=False)[0] if suffix else None
    return bool(guessed and guessed.startswith("image/"))


def _walk(root: str, root_stat: os.stat_result) -> tuple[list[tuple[str, ...]], list[SkippedFile]]:
    """Return sorted relative path parts of candidate image files, and what is skipped already:
    unreadable sub-folders and pictures in formats Chorus does not decode.

    Follows directory symlinks, but visits each real directory (st_dev, st_ino) once, so symlink
    loops end.  Iterative (no recursion limit on deep trees).  Hidden entries (names starting with
    ".", e.g. macOS "._x.png" resource forks, ".thumbnails") are ignored.
    """
    visited = {(root_stat.st_dev, root_stat.st_ino)}
    files: list[tuple[str, ...]] = []
    skipped: list[SkippedFile] = []
    stack: list[tuple[str, ...]] = [()]
    while stack:
        rel = stack.pop()
        dirpath = os.path.join(root, *rel)
        try:
            with os.scandir(dirpath) as it:
                entries = sorted(it, key=lambda e: e.name)  # deterministic, also for link dedup
        except OSError as exc:
            if not rel:
                raise UserError(f"Cannot read image folder {printable(root)}: {os_reason(exc)}") from None
            skipped.append(SkippedFile(printable(os.path.join(*rel)) + os.sep, f"folder {os_reason(exc)}"))
            continue
        subdirs: list[tuple[str, ...]] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks; False for broken links
            except OSError:
                is_dir = False
            if is_dir:
                try:
                    st = entry.stat()
                except OSError as exc:
                    skipped.append(SkippedFile(printable(os.path.join(*rel, name)) + os.sep, f"folder {os_reason(exc)}"))
                    continue
                key = (st.st_dev, st.st_ino)
                if key in visited:  # symlink loop or a second link to a folder already read
                    continue
                visited.add(key)
                subdirs.append(rel + (name,))
            elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                files.append(rel + (name,))
            elif _is_image_suffix(name):
                suffix = os.path.splitext(name)[1].lower()
                skipped.append(SkippedFile(printable(os.path.join(*rel, name)),
                                           f"{suffix[1:].upper()} is not a format Chorus reads; save it as PNG or JPEG"))
        subdirs.sort(reverse=True)  # popped in sorted order -> deterministic traversal
        stack.extend(subdirs)
    files.sort()
    return files, skipped


# --------------------------------------------------------------------------------------------
# one file


def _open_file(path: str):
    """Open a file for binary reading (separate so tests can simulate OS failures)."""
    return open(path, "rb")


def _load_one(path: str, size: int, max_pixels: int) -> _Decoded:
    """Decode one file to (size, size, 4) uint8 straight-alpha RGBA, or say why it is skipped."""
    try:
        pixels, note = _decode(path, size, max_pixels)
        return _Decoded(pixels, note=note)
    except _Skip as skip:
        return _Decoded(None, skip.reason)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return _Decoded(None, f"too large ({bomb_detail(exc, max_pixels)})")
    except UnidentifiedImageError:
        return _Decoded(None, "not an image (cannot identify format)")
    except MemoryError:
        return _Decoded(None, "out of memory while decoding")
    except OSError as exc:
        return _Decoded(None, os_reason(exc))
    except (SyntaxError, ValueError, EOFError) as exc:
        return _Decoded(None, short(f"corrupt image ({exc})" if str(exc) else "corrupt image"))
    except Exception as exc:  # noqa: BLE001 - a bad file must never stop the whole load
        return _Decoded(None, short(f"unreadable image ({type(exc).__name__}: {exc})"))


def _decode(path: str, size: int, max_pixels: int) -> tuple[np.ndarray, str]:
    st = os.stat(path)  # follows symlinks
    if not stat.S_ISREG(st.st_mode):
        raise _Skip("not a regular file")  # a FIFO or device named x.png would block or never end
    if st.st_size == 0:
        raise _Skip("zero-byte file")

    note = ""
    with _open_file(path) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # palette/transparency chatter from plugins
        pillow_limit = Image.MAX_IMAGE_PIXELS
        if pillow_limit is None or max_pixels <= pillow_limit:
            # Pillow warns (above its own limit) while opening: treat as a bomb.  When the caller
            # allows more than Pillow's limit, our own check below is the one that counts.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(fh, formats=_ALLOWED_FORMATS) as image:
            width, height = image.size  # header only: nothing decoded yet
            if width <= 0 or height <= 0:
                raise _Skip("empty image (0 pixels)")
            if width * height > max_pixels:
                raise _Skip(f"too large ({width}x{height} pixels > limit of {max_pixels:,})")
            if getattr(image, "n_frames", 1) > 1:  # GIF, WebP, TIFF pages
                note = "animated"  # the first frame is the one loaded (said in the report)
            if image.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale, never below `size` on the short side.
                image.draft(image.mode, (size, size))
            image.load()  # decodes the first frame; raises on truncated data
            try:
                oriented = ImageOps.exif_transpose(image)
            except Exception:  # noqa: BLE001 - broken EXIF: keep the pixels as stored
                oriented = image.copy()
    array = np.asarray(_square(_to_mode(oriented), size), dtype=np.uint8)
    if array.shape != (size, size, 4):  # defensive: never let a bad shape through
        raise _Skip(f"unexpected decoded shape {array.shape}")
    array = array.copy()
    array[array[..., 3] == 0, :3] = 0  # straight alpha: no colour where nothing shows
    return array, note


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "I;16S", "I;16LS", "I;16BS", "I;32", "I;32L", "I;32B"})


def _to_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> premultiplied "RGBa" (so resizing does not bleed the colour of invisible
    pixels into visible ones); pictures without transparency are opaque."""
    mode = image.mode
    if mode in _WIDE_GREY_MODES or mode.startswith("I;"):
        image = _wide_grey_to_l(image)
    elif mode == "F":
        image = _float_to_l(image)
    elif mode == "La":
        image = image.convert("LA")
    elif mode not in _ALPHA_MODES and mode not in ("1", "L", "P", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    if image.mode != "RGBa":
        image = image.convert("RGBA")  # palette and colour-key transparency become alpha here
    return image.convert("RGBa")


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    """16/32-bit grey ("I;16", "I" from 16-bit PNG) -> 8-bit, mapping 0..65535 onto 0..255."""
    values = np.asarray(image).astype(np.float64)
    eight = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(eight))


def _float_to_l(image: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if values.size and values.min() >= 0.0 and values.max() <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.ascontiguousarray(np.clip(np.rint(values), 0, 255).astype(np.uint8)))


def _square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is `size`, centre-cropped to size x size (one resampling pass), in
    premultiplied alpha; back to straight "RGBA"."""
    width, height = image.size
    side = min(width, height)
    left = (width - side) / 2.0
    top = (height - side) / 2.0
    box = (left, top, left + side, top + side)
    return image.resize((size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0).convert("RGBA")


# --------------------------------------------------------------------------------------------
# labels


def _labels(loaded: list[tuple[str, ...]]) -> tuple[np.ndarray | None, tuple[str, ...]]:
    """Class labels from immediate sub-folders: only when every image is in one, and there are >= 2."""
    if any(len(parts) < 2 for parts in loaded):
        return None, ()
    names = sorted({parts[0] for parts in loaded})
    if len(names) < 2:
        return None, ()
    index = {name: i for i, name in enumerate(names)}
    labels = np.fromiter((index[parts[0]] for parts in loaded), dtype=np.int64, count=len(loaded))
    return labels, tuple(printable(name) for name in names)


# --------------------------------------------------------------------------------------------
# text helpers


def _check_int(what: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{what} must be a whole number, not {value!r}.")
    if value < minimum:
        raise UserError(f"{what} must be at least {minimum}, not {value}.")
    return int(value)
