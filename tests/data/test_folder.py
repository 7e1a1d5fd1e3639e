"""Tests for engine.data.folder: every kind of good and bad file a user's picture folder can hold."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.data import folder as folder_mod
from engine.data.folder import FolderImages, load_image_folder
from engine.errors import UserError

pytestmark = pytest.mark.reliability  # issue 6: the bad-image corpus

SIZE = 16
RED = (220, 20, 20)
GREEN = (20, 200, 20)
BLUE = (20, 20, 220)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------------------------------------
# corpus helpers


def noise(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with only a few bytes of pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def halves(w: int, h: int, first, second, vertical_split: bool = True) -> Image.Image:
    """Left/right (or top/bottom) halves in two colours."""
    img = Image.new("RGB", (w, h), first)
    if vertical_split:
        img.paste(second, (w // 2, 0, w, h))
    else:
        img.paste(second, (0, h // 2, w, h))
    return img


def write_bytes_name(directory: Path, name: bytes, data: bytes) -> None:
    """Create a file whose name is raw bytes (possibly not valid UTF-8)."""
    fd = os.open(os.path.join(os.fsencode(directory), name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


LONG_GOOD = "g" * 196 + ".png"  # 200 characters
LONG_BAD = "b" * 196 + ".png"

GOOD = {
    "good_rgb.png",
    "gray.jpg",
    "rgba.png",
    "palette_trns.png",
    "grey16.png",
    "cmyk.jpg",
    "exif6.jpg",
    "anim.webp",
    "anim_gif.png",
    "tiny.png",
    "wide.png",
    "UPPER.JPG",
    "bitmap.bmp",
    "lossless.webp",
    "sub/nested.png",
    "good\\xff.png",
    LONG_GOOD,
    "animated.gif",
}

BAD = {
    "truncated.png": "truncated image file",
    "truncated.jpg": "truncated image file",
    "zero.png": "zero-byte file",
    "html.png": "not an image (cannot identify format)",
    "bomb.png": "too large (10,000,000,000 pixels > limit of 64,000,000)",
    "big_header.png": "too large (9000x9000 pixels > limit",
    "dangling.png": "missing file or broken link",
    "selfloop.png": "symbolic link loop",
    "pipe.png": "not a regular file",
    "broken\\xfe.png": "not an image",
    LONG_BAD: "zero-byte file",
}


def build_corpus(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "good_rgb.png").write_bytes(encoded(noise(40, 40, seed=1), "PNG"))
    (root / "gray.jpg").write_bytes(encoded(Image.new("L", (32, 32), 100), "JPEG", quality=95))

    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))  # left half fully transparent black
    rgba.paste((220, 20, 20, 255), (16, 0, 32, 32))  # right half opaque red
    (root / "rgba.png").write_bytes(encoded(rgba, "PNG"))

    pal = Image.new("P", (32, 32), 0)
    pal.putpalette([0, 0, 0] + list(BLUE) + [0] * (256 - 2) * 3)
    pal.paste(1, (0, 0, 32, 16))  # top half blue, bottom half index 0 = transparent
    (root / "palette_trns.png").write_bytes(encoded(pal, "PNG", transparency=0))

    grey16 = Image.fromarray(np.full((24, 24), 32768, dtype=np.uint16))
    assert grey16.mode.startswith("I;16")
    (root / "grey16.png").write_bytes(encoded(grey16, "PNG"))

    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red in CMYK
    (root / "cmyk.jpg").write_bytes(encoded(cmyk, "JPEG", quality=95))

    # Stored wide, left red / right blue; orientation 6 = rotate 90 deg clockwise for display,
    # so the displayed picture is tall with red on top and blue at the bottom.
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "exif6.jpg").write_bytes(encoded(halves(64, 32, RED, BLUE), "JPEG", quality=95, exif=exif.tobytes()))

    frames = [Image.new("RGB", (24, 24), RED), Image.new("RGB", (24, 24), BLUE)]
    (root / "anim.webp").write_bytes(
        encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    )
    gif_frames = [f.convert("P") for f in frames]
    (root / "anim_gif.png").write_bytes(  # GIF content under a .png name: identified by content
        encoded(gif_frames[0], "GIF", save_all=True, append_images=gif_frames[1:], duration=100)
    )
    (root / "tiny.png").write_bytes(encoded(Image.new("RGB", (1, 1), GREEN), "PNG"))

    wide = Image.new("RGB", (60, 20), RED)
    wide.paste(GREEN, (20, 0, 40, 20))
    wide.paste(BLUE, (40, 0, 60, 20))
    (root / "wide.png").write_bytes(encoded(wide, "PNG"))

    (root / "UPPER.JPG").write_bytes(encoded(noise(20, 30, seed=2), "JPEG"))
    (root / "bitmap.bmp").write_bytes(encoded(Image.new("1", (20, 20), 1), "BMP"))
    (root / "lossless.webp").write_bytes(encoded(noise(20, 20, seed=3), "WEBP", lossless=True))

    sub = root / "sub"
    sub.mkdir()
    (sub / "nested.png").write_bytes(encoded(noise(20, 20, seed=4), "PNG"))
    os.symlink("..", sub / "loop")  # directory symlink to its parent: a loop

    data = encoded(noise(64, 64, seed=5), "PNG")
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    data = encoded(noise(64, 64, seed=6), "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "zero.png").write_bytes(b"")
    (root / "html.png").write_text("<!DOCTYPE html><html><body>Not found</body></html>\n")
    (root / "bomb.png").write_bytes(png_header_only(100_000, 100_000))  # 10 gigapixels
    (root / "big_header.png").write_bytes(png_header_only(9000, 9000))  # 81 Mpx > default 64 Mpx limit
    os.symlink("does-not-exist.png", root / "dangling.png")
    os.symlink("selfloop.png", root / "selfloop.png")
    os.mkfifo(root / "pipe.png")

    write_bytes_name(root, b"good\xff.png", encoded(noise(20, 20, seed=7), "PNG"))
    write_bytes_name(root, b"broken\xfe.png", b"GIF89a but not really")
    (root / LONG_GOOD).write_bytes(encoded(noise(20, 20, seed=8), "PNG"))
    (root / LONG_BAD).write_bytes(b"")

    (root / "animated.gif").write_bytes(encoded(gif_frames[0], "GIF"))  # one frame: loaded as is

    # Ignored entirely: hidden files (macOS resource forks), hidden folders, non-image extensions.
    (root / "._good_rgb.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / ".thumbnails").mkdir()
    (root / ".thumbnails" / "t.png").write_bytes(encoded(noise(8, 8), "PNG"))
    (root / "notes.txt").write_text("hello")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root)
    return root


@pytest.fixture(scope="module")
def rgb(corpus) -> FolderImages:
    return load_image_folder(corpus, SIZE, 3)


def by_name(result: FolderImages, name: str) -> np.ndarray:
    return result.images[result.paths.index(name.replace("/", os.sep))].astype(int)


def close(pixel, colour, tol=40) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - np.asarray(colour)) <= tol))


# ------------------------------------------------------------------------------------------
# the big corpus


def test_good_files_load_with_shape_and_dtype(rgb):
    assert rgb.images.dtype == np.uint8
    assert rgb.images.shape == (len(GOOD), SIZE, SIZE, 3)
    assert set(rgb.paths) == {p.replace("/", os.sep) for p in GOOD}
    assert rgb.report.loaded == len(GOOD)
    assert rgb.labels is None  # images directly in the root as well as in sub/
    assert rgb.class_names == ()
    assert rgb.paths[:2] == ("UPPER.JPG", "anim.webp")  # sorted by name (code point order)
    nested = rgb.paths.index(os.path.join("sub", "nested.png"))  # ("sub", ...) sorts before ("tiny.png",)
    assert rgb.paths[nested + 1] == "tiny.png"


def test_bad_files_are_skipped_with_reasons(rgb):
    reasons = {s.path: s.reason for s in rgb.report.skipped}
    assert set(reasons) == set(BAD)
    for name, expected in BAD.items():
        assert reasons[name].startswith(expected), (name, reasons[name])


def test_summary_mentions_skipped_files(rgb, corpus):
    text = rgb.report.summary()
    assert text.startswith(f"Loaded {len(GOOD)} images from {corpus}; skipped {len(BAD)}: ")
    assert "truncated.png (truncated image file)" in text
    assert "and 1 more" in text  # 11 skipped, 10 listed
    first, note = text.split("\n")  # the skipped files on one line, then the animations' note
    assert note == "First frame used of 2 animations (GIF, WebP or TIFF with several frames), e.g. anim.webp."
    text.encode("utf-8")  # printable even with non-UTF-8 names
    for s in rgb.report.skipped:
        s.path.encode("utf-8")


def test_colour_conversions(rgb):
    assert close(by_name(rgb, "gray.jpg"), (100, 100, 100), tol=3)
    rgba = by_name(rgb, "rgba.png")
    assert close(rgba[:, :3], (255, 255, 255), tol=5)  # transparent -> white, not black
    assert close(rgba[:, -3:], RED, tol=10)
    pal = by_name(rgb, "palette_trns.png")
    assert close(pal[:3], BLUE, tol=10)
    assert close(pal[-3:], (255, 255, 255), tol=5)
    assert close(by_name(rgb, "grey16.png"), (128, 128, 128), tol=1)  # 32768 / 257, not clipped to 255
    cmyk = by_name(rgb, "cmyk.jpg")
    assert cmyk[..., 0].min() > 200 and cmyk[..., 1:].max() < 60  # red, not inverted cyan
    assert close(by_name(rgb, "bitmap.bmp"), (255, 255, 255), tol=0)


def test_exif_rotation_is_honoured(rgb):
    img = by_name(rgb, "exif6.jpg")
    assert close(img[:4], RED, tol=40)  # red on top after rotation ...
    assert close(img[-4:], BLUE, tol=40)  # ... blue at the bottom (unrotated would be left/right)


def test_first_frame_of_animations(rgb):
    assert close(by_name(rgb, "anim.webp"), RED, tol=10)
    assert close(by_name(rgb, "anim_gif.png"), RED, tol=40)


def test_tiny_and_non_square(rgb):
    assert close(by_name(rgb, "tiny.png"), GREEN, tol=0)
    wide = by_name(rgb, "wide.png")  # 60x20, red | green | blue thirds -> centre crop is green
    assert close(wide[:, 2:-2], GREEN, tol=10)
    assert close(wide.mean(axis=(0, 1)), GREEN, tol=25)


def test_grayscale_output(corpus):
    grey = load_image_folder(corpus, SIZE, 1)
    assert grey.images.shape == (len(GOOD), SIZE, SIZE, 1)
    assert grey.images.dtype == np.uint8
    assert close(by_name(grey, "grey16.png"), 128, tol=1)
    assert close(by_name(grey, "rgba.png")[:, :3], 255, tol=5)
    assert close(by_name(grey, "gray.jpg"), 100, tol=3)
    assert len(grey.report.skipped) == len(BAD)


def test_deterministic(corpus, rgb):
    again = load_image_folder(corpus, SIZE, 3)
    assert again.paths == rgb.paths
    assert np.array_equal(again.images, rgb.images)
    assert again.report == rgb.report


# ------------------------------------------------------------------------------------------
# size limits


def test_small_max_pixels_refuses_real_image(tmp_path):
    (tmp_path / "big.png").write_bytes(encoded(noise(30, 30), "PNG"))
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    result = load_image_folder(tmp_path, 8, 3, max_pixels=500)
    assert result.paths == ("ok.png",)
    assert result.report.skipped[0].reason == "too large (30x30 pixels > limit of 500)"


def test_pillow_warning_range_is_refused_without_decoding(tmp_path):
    # 95 Mpx: above Pillow's warning limit, below its hard limit; refused as "too large".
    (tmp_path / "warn.png").write_bytes(png_header_only(10_000, 9_500))
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    result = load_image_folder(tmp_path, 8, 3)
    assert result.report.skipped[0].reason == "too large (95,000,000 pixels > limit of 64,000,000)"
    # A caller allowing more than Pillow's warning limit gets the file decoded (here: it is truncated).
    allowed = load_image_folder(tmp_path, 8, 3, max_pixels=100_000_000)
    assert allowed.report.skipped[0].reason == "truncated image file"


def test_refusal_happens_before_decoding(tmp_path, monkeypatch):
    (tmp_path / "big_header.png").write_bytes(png_header_only(9000, 9000))
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    from PIL import ImageFile

    loads = []
    real_load = ImageFile.ImageFile.load

    def spy(self):
        loads.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    result = load_image_folder(tmp_path, 8, 1)
    assert result.report.skipped[0].reason.startswith("too large (9000x9000")
    assert (9000, 9000) not in loads
    assert result.report.loaded == 1


# ------------------------------------------------------------------------------------------
# permissions and unexpected failures


def test_permission_denied_simulated(tmp_path, monkeypatch):
    (tmp_path / "locked.png").write_bytes(encoded(noise(10, 10), "PNG"))
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    real_open = folder_mod._open_file

    def fake_open(path):
        if path.endswith("locked.png"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(folder_mod, "_open_file", fake_open)
    result = load_image_folder(tmp_path, 8, 3)
    assert result.paths == ("ok.png",)
    assert result.report.skipped[0].path == "locked.png"
    assert result.report.skipped[0].reason == "permission denied"
    assert "locked.png (permission denied)" in result.report.summary()


def _load_as_unprivileged_user(root):
    """Root reads chmod-000 files anyway, so as root load in a forked child running as 'nobody'."""
    if not IS_ROOT:
        result = load_image_folder(root, 8, 3)
        return {s.path: s.reason for s in result.report.skipped}, list(result.paths)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges, load, report as JSON, exit without running pytest teardown
        code = 0
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            result = load_image_folder(root, 8, 3)
            payload = {"skipped": {s.path: s.reason for s in result.report.skipped}, "paths": list(result.paths)}
            os.write(write_end, json.dumps(payload).encode())
        except BaseException:  # noqa: BLE001 - any failure shows up as a bad exit code
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        data = handle.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    payload = json.loads(data)
    return payload["skipped"], payload["paths"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs POSIX permissions")
def test_permission_denied_real():
    root = Path(tempfile.mkdtemp(prefix="chorus-perm-"))
    try:
        root.chmod(0o755)  # 'nobody' must be able to enter the folder itself
        locked = root / "locked.png"
        locked.write_bytes(encoded(noise(10, 10), "PNG"))
        locked_dir = root / "private"
        locked_dir.mkdir()
        (locked_dir / "inside.png").write_bytes(encoded(noise(10, 10), "PNG"))
        ok = root / "ok.png"
        ok.write_bytes(encoded(noise(10, 10), "PNG"))
        ok.chmod(0o644)
        locked.chmod(0)
        locked_dir.chmod(0)
        reasons, paths = _load_as_unprivileged_user(root)
    finally:
        for path in (root / "locked.png", root / "private"):
            if path.exists():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)
    assert reasons["locked.png"] == "permission denied"
    assert reasons["private" + os.sep] == "folder permission denied"
    assert paths == ["ok.png"]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (MemoryError(), "out of memory while decoding"),
        (RuntimeError("boom"), "unreadable image (RuntimeError: boom)"),
        (ValueError("bad palette"), "corrupt image (bad palette)"),
    ],
)
def test_unexpected_errors_are_contained(tmp_path, monkeypatch, exc, reason):
    (tmp_path / "a.png").write_bytes(encoded(noise(13, 17), "PNG"))
    (tmp_path / "b.png").write_bytes(encoded(noise(10, 10), "PNG"))
    real = folder_mod._to_mode

    def failing(image):
        if image.size == (13, 17):
            raise exc
        return real(image)

    monkeypatch.setattr(folder_mod, "_to_mode", failing)
    result = load_image_folder(tmp_path, 8, 3)
    assert result.paths == ("b.png",)
    assert result.report.skipped == (folder_mod.SkippedFile("a.png", reason),)


# ------------------------------------------------------------------------------------------
# labels


def test_subfolder_labels(tmp_path):
    for cls, seed in (("dogs", 1), ("cats", 2), ("birds", 3)):
        (tmp_path / cls).mkdir()
    for i in range(2):
        (tmp_path / "dogs" / f"d{i}.png").write_bytes(encoded(noise(10, 10, seed=i), "PNG"))
        (tmp_path / "cats" / f"c{i}.jpg").write_bytes(encoded(noise(10, 10, seed=i + 9), "JPEG"))
    (tmp_path / "cats" / "deep").mkdir()
    (tmp_path / "cats" / "deep" / "c9.png").write_bytes(encoded(noise(10, 10), "PNG"))
    (tmp_path / "birds" / "broken.png").write_bytes(b"nope")  # a class with no loadable image
    result = load_image_folder(tmp_path, 8, 3)
    assert result.class_names == ("cats", "dogs")
    assert result.labels is not None and result.labels.dtype == np.int64
    expected = {"cats": 0, "dogs": 1}
    assert [expected[p.split(os.sep)[0]] for p in result.paths] == result.labels.tolist()
    assert result.labels.tolist() == [0, 0, 0, 1, 1]


def test_no_labels_for_single_subfolder_or_root_images(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").write_bytes(encoded(noise(10, 10), "PNG"))
    single = load_image_folder(tmp_path, 8, 3)
    assert single.labels is None and single.class_names == ()

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b.png").write_bytes(encoded(noise(10, 10), "PNG"))
    (tmp_path / "root.png").write_bytes(encoded(noise(10, 10), "PNG"))
    mixed = load_image_folder(tmp_path, 8, 3)
    assert mixed.labels is None and mixed.class_names == ()
    assert single.report.classes_note == ""  # one subfolder: nothing looks lost
    assert mixed.report.summary().endswith("\nNo classes: 1 image lies outside the 2 subfolders (e.g. root.png); "
                                           "move them into one to train with the subfolders as classes.")


def test_symlinked_folder_is_followed_once(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(encoded(noise(10, 10), "PNG"))
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.png").write_bytes(encoded(noise(10, 10), "PNG"))
    os.symlink(outside, root / "linked")
    os.symlink(outside, root / "linked_again")  # second link to the same folder: not read twice
    os.symlink(root, outside / "back")  # loop through the outside folder back to the root
    result = load_image_folder(root, 8, 3)
    assert result.paths == ("a.png", os.path.join("linked", "x.png"))


# ------------------------------------------------------------------------------------------
# user errors


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match=r"^Image folder not found: .*nowhere$"):
        load_image_folder(tmp_path / "nowhere", 16, 3)


def test_path_is_a_file(tmp_path):
    f = tmp_path / "pic.png"
    f.write_bytes(encoded(noise(10, 10), "PNG"))
    with pytest.raises(UserError, match="is not a folder"):
        load_image_folder(f, 16, 3)


def test_empty_folder(tmp_path):
    with pytest.raises(UserError, match=r"^No images \(\.png, \.jpg, \.jpeg, \.webp, \.bmp, \.gif, \.tif, \.tiff\) found in "):
        load_image_folder(tmp_path, 16, 3)
    (tmp_path / "readme.txt").write_text("no pictures here")
    (tmp_path / ".hidden.png").write_bytes(encoded(noise(10, 10), "PNG"))
    with pytest.raises(UserError, match="No images"):
        load_image_folder(tmp_path, 16, 3)


def test_only_broken_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_text("<html></html>")
    with pytest.raises(UserError) as info:
        load_image_folder(tmp_path, 16, 3)
    message = str(info.value)
    assert message.startswith(f"None of the 2 image files in {tmp_path} could be read; first problems: ")
    assert "a.png (zero-byte file)" in message
    assert "b.jpg (not an image (cannot identify format))" in message


@pytest.mark.parametrize(
    ("size", "channels", "max_pixels", "match"),
    [
        (4, 3, 1000, "at least 8"),
        (16.0, 3, 1000, "whole number"),
        (True, 3, 1000, "whole number"),
        (16, 2, 1000, "Channels must be 1"),
        (16, 5, 1000, "Channels must be 1"),
        (16, "rgb", 1000, "Channels must be 1"),
        (16, 3, 0, "at least 1"),
    ],
)
def test_bad_arguments(tmp_path, size, channels, max_pixels, match):
    (tmp_path / "a.png").write_bytes(encoded(noise(10, 10), "PNG"))
    with pytest.raises(UserError, match=match):
        load_image_folder(tmp_path, size, channels, max_pixels=max_pixels)


def test_many_skipped_summary_is_bounded(tmp_path):
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    for i in range(25):
        (tmp_path / f"bad{i:02d}.png").write_bytes(b"")
    summary = load_image_folder(tmp_path, 8, 3).report.summary()
    assert summary.startswith("Loaded 1 image from ")
    assert summary.count("(zero-byte file)") == 10
    assert summary.endswith("and 15 more")


def test_clean_summary(tmp_path):
    (tmp_path / "ok.png").write_bytes(encoded(noise(10, 10), "PNG"))
    assert load_image_folder(str(tmp_path), 8, 3).report.summary() == f"Loaded 1 image from {tmp_path}."
