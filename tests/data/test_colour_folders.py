"""Artists' folders: colour and transparency end to end, every image file loaded or listed, the decoded
cache, and a held-out share that never reaches training."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import DataConfig, RunConfig
from engine.data.folder import load_image_folder
from engine.data.folder_cache import FolderCache
from engine.data.holdout import heldout_count
from engine.data.preprocess import choose_channels
from engine.data.sources import load_data
from engine.members.registry import run_config
from engine.session import Session
from engine.store.images import read_png_metadata
from tests.conftest import tiny_params

CLASSES = ("circles", "squares", "bars")


def sprite(index: int, size: int = 16) -> Image.Image:
    """A coloured shape on a fully transparent ground; pixel (0, 0) carries the image's id in its
    colour under alpha 1, so any copy of the picture can be traced back to its file."""
    rng = np.random.default_rng(index)
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    colour = rng.integers(40, 255, size=3)
    a, b = rng.integers(2, size - 8, size=2)
    kind = index % 3
    if kind == 0:
        yy, xx = np.mgrid[:size, :size]
        mask = (yy - a - 3) ** 2 + (xx - b - 3) ** 2 <= 9
    elif kind == 1:
        mask = np.zeros((size, size), bool)
        mask[a:a + 6, b:b + 6] = True
    else:
        mask = np.zeros((size, size), bool)
        mask[a:a + 2, 1:size - 1] = True
    pixels[mask, :3] = colour
    pixels[mask, 3] = 255
    pixels[0, 0] = (index % 256, index // 256, 7, 255)  # the id, visible
    return Image.fromarray(pixels, "RGBA")


def image_id(picture: np.ndarray) -> int:
    return int(picture[0, 0, 0]) + 256 * int(picture[0, 0, 1])


@pytest.fixture(scope="module")
def sprites(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sprites")
    for index in range(300):
        folder = root / CLASSES[index % 3]
        folder.mkdir(exist_ok=True)
        sprite(index).save(folder / f"s{index:03d}.png")
    return root


def tiny_run_config(source: Path, channels="auto", members=("dcgan", "vae", "diffusion", "judge"), steps=5) -> RunConfig:
    return run_config({
        "data": {"source": str(source), "size": 16, "channels": channels},
        "members": [{"kind": k, "batch_size": 8, "params": tiny_params(k)} for k in members],
        "train": {"steps": steps, "seed": 0, "device": "cpu", "log_every": 1, "checkpoint_every": steps,
                  "preview_every": 1000},
    })


# ------------------------------------------------------------------------------------------
# channels and transparency


def test_auto_channels_follow_the_pictures(tmp_path):
    rgba = np.zeros((4, 8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 0] = 200  # red, opaque
    assert choose_channels(rgba)[0] == 3
    grey = rgba.copy()
    grey[..., :3] = 90
    assert choose_channels(grey)[0] == 1
    see_through = rgba.copy()
    see_through[:3, :2, :2, 3] = 0  # 3 of 4 pictures show some transparency
    channels, why = choose_channels(see_through)
    assert channels == 4 and "3 of 4 pictures have transparent pixels" in why


def test_a_transparent_folder_loads_as_rgba_by_default(sprites):
    data = load_data(DataConfig.from_dict({"source": str(sprites)}))
    assert data.config.channels == 4 and data.config.size == 16  # auto: RGBA, the pictures' own size
    assert "Chose colour + transparency (4 channels)" in data.report
    alpha = data.images[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()
    invisible = data.images[alpha == 0]
    assert not invisible[:, :3].any()  # straight alpha: no colour where nothing shows


def test_rgba_round_trip_keeps_alpha_in_the_exported_png(sprites, tmp_path):
    from engine.cli import main

    session = Session.create(tiny_run_config(sprites, channels=4, members=("dcgan", "judge")), tmp_path / "run")
    session.train(5)
    assert session.run.config.data.channels == 4
    images = session.member("dcgan").sample(4, torch.Generator().manual_seed(0))
    assert images.shape == (4, 4, 16, 16)
    out = tmp_path / "a.png"
    assert main(["sample", str(tmp_path / "run"), "--member", "dcgan", "--n", "4", "--out", str(out)]) == 0
    with Image.open(out) as picture:
        assert picture.mode == "RGBA"
        alpha = np.asarray(picture)[..., 3]
    assert (alpha == 0).any()  # the grid's gutter is transparent: a sprite sheet keeps its background
    assert read_png_metadata(out)["member"] == "dcgan"


def test_colour_and_grey_composite_transparency_over_white(sprites):
    rgb = load_image_folder(sprites, 16, 3)
    grey = load_image_folder(sprites, 16, 1)
    at = rgb.paths.index(os.path.join("circles", "s000.png"))
    clear = np.asarray(sprite(0))[..., 3] == 0
    assert clear.any() and (rgb.images[at][clear] == 255).all() and (grey.images[at][clear] == 255).all()


# ------------------------------------------------------------------------------------------
# every image file is loaded or listed


def test_gif_first_frame_and_tiff_load(tmp_path):
    red, blue = Image.new("RGB", (20, 20), (220, 20, 20)), Image.new("RGB", (20, 20), (20, 20, 220))
    red.convert("P").save(tmp_path / "anim.gif", save_all=True, append_images=[blue.convert("P")], duration=50)
    blue.save(tmp_path / "photo.tif")
    Image.new("RGBA", (20, 20), (20, 200, 20, 128)).save(tmp_path / "half.tiff")
    result = load_image_folder(tmp_path, 8, 4)
    assert result.paths == ("anim.gif", "half.tiff", "photo.tif")
    anim, half, photo = result.images
    assert np.abs(anim[4, 4].astype(int) - (220, 20, 20, 255)).max() <= 2  # the first frame (palette-rounded)
    assert tuple(photo[4, 4]) == (20, 20, 220, 255)
    assert half[4, 4, 3] == 128
    assert "First frame used of 1 animation" in result.report.summary()


def test_every_image_suffixed_file_that_is_not_loaded_is_reported(tmp_path):
    Image.new("RGB", (10, 10), "red").save(tmp_path / "ok.png")
    for name in ("photo.HEIC", "art.psd", "icon.svg", "shot.avif", "raw.CR2", "logo.ico"):
        (tmp_path / name).write_bytes(b"\0" * 16)
    (tmp_path / "broken.tif").write_bytes(b"II*\0 not really")
    (tmp_path / "notes.txt").write_text("not a picture")
    result = load_image_folder(tmp_path, 8, 3)
    reasons = {s.path: s.reason for s in result.report.skipped}
    assert set(reasons) == {"photo.HEIC", "art.psd", "icon.svg", "shot.avif", "raw.CR2", "logo.ico", "broken.tif"}
    assert reasons["photo.HEIC"] == "HEIC is not a format Chorus reads; save it as PNG or JPEG"
    assert result.paths == ("ok.png",)


# ------------------------------------------------------------------------------------------
# the decoded cache


def test_a_second_read_comes_from_the_cache_and_a_changed_file_is_decoded_again(tmp_path, monkeypatch):
    from engine.data import folder as folder_mod

    root = tmp_path / "pictures"
    root.mkdir()
    for index in range(6):
        sprite(index).save(root / f"{index}.png")
    cache = lambda: FolderCache(str(root), 16, base=tmp_path / "cache")  # noqa: E731
    first = load_image_folder(root, 16, 4, cache=cache())
    assert first.cached == 0

    decoded: list[str] = []
    real = folder_mod._load_one
    monkeypatch.setattr(folder_mod, "_load_one", lambda path, *a: decoded.append(os.path.basename(path)) or real(path, *a))
    again = load_image_folder(root, 16, 4, cache=cache())
    assert decoded == [] and again.cached == 6
    assert np.array_equal(again.images, first.images) and again.paths == first.paths

    sprite(99).save(root / "3.png")
    stat = os.stat(root / "3.png")
    os.utime(root / "3.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    changed = load_image_folder(root, 16, 4, cache=cache())
    assert decoded == ["3.png"] and changed.cached == 5
    assert image_id(changed.images[3]) == 99 and np.array_equal(changed.images[:3], first.images[:3])
    assert load_image_folder(root, 16, 4, cache=cache()).cached == 6  # the new pixels were kept


def test_a_skipped_file_is_remembered_with_its_reason(tmp_path):
    root = tmp_path / "pictures"
    root.mkdir()
    sprite(1).save(root / "good.png")
    (root / "bad.png").write_bytes(b"<html>")
    cache = lambda: FolderCache(str(root), 16, base=tmp_path / "cache")  # noqa: E731
    first = load_image_folder(root, 16, 4, cache=cache())
    again = load_image_folder(root, 16, 4, cache=cache())
    assert again.cached == 2 and again.report.skipped == first.report.skipped


# ------------------------------------------------------------------------------------------
# the held-out share


def test_heldout_counts():
    assert heldout_count(100, 0.1) == 0  # too few to measure anything: used whole
    assert heldout_count(300, 0.1) == 60
    assert heldout_count(1906, 0.1) == 300
    assert heldout_count(10_000, 0.1) == 1000
    assert heldout_count(10_000, 0.0) == 0


def test_held_out_images_never_reach_a_training_batch(sprites, tmp_path):
    data = load_data(DataConfig.from_dict({"source": str(sprites), "size": 16}))
    held = {image_id(p) for p in data.heldout}
    trained = {image_id(p) for p in data.images}
    assert len(held) == 60 and len(trained) == 240 and not held & trained
    held_classes = np.bincount(data.heldout_labels, minlength=3)
    assert held_classes.tolist() == [20, 20, 20]  # stratified by class
    assert "Held out 60 of 300 images (20%, stratified by class)" in data.report

    session = Session.create(tiny_run_config(sprites, members=("dcgan", "judge")), tmp_path / "run")
    seen: set[int] = set()
    for _ in range(200):
        batch = session.dataset.batch(16, torch.Generator().manual_seed(len(seen)))
        pixels = ((batch.images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        seen |= {image_id(p) for p in pixels}
    assert seen <= trained and not seen & held and len(seen) > 200


def test_the_split_does_not_depend_on_files_added_to_other_classes(sprites, tmp_path):
    before = load_data(DataConfig.from_dict({"source": str(sprites), "size": 16}))
    grown = tmp_path / "grown"
    import shutil

    shutil.copytree(sprites, grown)
    sprite(300).save(grown / "circles" / "zzz.png")
    after = load_data(DataConfig.from_dict({"source": str(grown), "size": 16}))
    ids = lambda data, label: {image_id(p) for p, l in zip(data.heldout, data.heldout_labels) if l == label}  # noqa: E731
    assert ids(before, 1) == ids(after, 1) and ids(before, 2) == ids(after, 2)


def test_a_small_folder_is_used_whole_and_says_so(tmp_path):
    for index in range(40):
        sprite(index).save(tmp_path / f"{index}.png")
    data = load_data(DataConfig.from_dict({"source": str(tmp_path), "size": 16}))
    assert data.heldout is None and len(data.images) == 40
    assert "Too few images to hold any out (40; 500 or more are needed)" in data.report
