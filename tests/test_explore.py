"""Exploring a run (engine/explore.py and `sample`'s explore flags): variations, interpolation, the
nearest training images, sprite sheets and folders of single PNGs that carry their recipes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine import explore
from engine.cli import main
from engine.data.dataset import to_signed_float
from engine.metrics.features import JudgeRecipe
from engine.metrics.memorisation import nearest_k
from engine.sampling import open_for_sampling
from engine.session import Session
from engine.store.images import read_png_metadata, to_nhwc_uint8
from tests.conftest import train_tiny_run
from tests.data.test_colour_folders import sprites, tiny_run_config  # noqa: F401 - the fixture

SIZE = 16
GENERATORS = ("dcgan", "vae", "diffusion")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Every member on 96 grey shapes (too few to hold any out), a few steps."""
    folder = tmp_path_factory.mktemp("explore")
    train_tiny_run(folder, steps=4, checkpoint_every=2)
    return folder / "run"


@pytest.fixture(scope="module")
def sprite_run(sprites, tmp_path_factory) -> Path:  # noqa: F811
    """A DCGAN and a diffusion UNet on 300 RGBA sprites in class folders (60 held out)."""
    out = tmp_path_factory.mktemp("sprite-run") / "run"
    Session.create(tiny_run_config(sprites, members=("dcgan", "diffusion"), steps=4), out).train(4)
    return out


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture)


def cell(sheet: np.ndarray, index: int, columns: int, pad: int, margin: int) -> np.ndarray:
    row, col = divmod(index, columns)
    top, left = margin + row * (SIZE + pad), margin + col * (SIZE + pad)
    return sheet[top:top + SIZE, left:left + SIZE]


def ok(argv: list[str]) -> None:
    assert main([str(a) for a in argv]) == 0


# ------------------------------------------------------------------------------------------
# interpolation

@pytest.mark.parametrize("kind", GENERATORS)
def test_interpolation_endpoints_equal_the_two_seeds_own_samples(run, kind):
    session = open_for_sampling(run, None)
    a, b = (explore.source_of(session, explore.seed_recipe(session, kind, seed)) for seed in (3, 5))
    strip = explore.interpolation(session, a, b, 5)
    member = session.member(kind)
    for end, seed in ((0, 3), (-1, 5)):
        own_latent = member.latents(1, torch.Generator().manual_seed(seed))[0]
        own_image = member.sample(1, torch.Generator().manual_seed(seed))
        assert torch.equal(strip.latents[end], own_latent)
        assert np.array_equal(to_nhwc_uint8(strip.images[end:][:1]), to_nhwc_uint8(own_image))
    inner = to_nhwc_uint8(strip.images[1:-1]).astype(int)
    assert np.abs(inner - to_nhwc_uint8(strip.images[:1]).astype(int)).max() > 0  # it moves between them


def test_cli_interpolation_strip_starts_and_ends_with_the_seeds_own_images(run, tmp_path):
    ok(["sample", run, "--member", "dcgan", "--interpolate", "3,5", "--n", "4", "--out", tmp_path / "strip.png"])
    for seed in (3, 5):
        ok(["sample", run, "--member", "dcgan", "--n", "1", "--seed", seed, "--out", tmp_path / f"own{seed}.png"])
    strip = pixels(tmp_path / "strip.png")
    assert strip.shape == (SIZE, 4 * SIZE + 3 * 2)  # one row, 2-px gaps, no margin
    assert np.array_equal(cell(strip, 0, 4, 2, 0), cell(pixels(tmp_path / "own3.png"), 0, 1, 2, 2))
    assert np.array_equal(cell(strip, 3, 4, 2, 0), cell(pixels(tmp_path / "own5.png"), 0, 1, 2, 2))
    recipe = read_png_metadata(tmp_path / "strip.png")
    assert recipe["explore"]["interpolate"]["a"]["seed"] == 3 and recipe["n"] == 4
    ok(["sample", run, "--member", "dcgan", "--interpolate", "3,5", "--n", "4", "--out", tmp_path / "strip.gif"])
    with Image.open(tmp_path / "strip.gif") as animation:
        assert animation.n_frames == 4 + 2  # forwards, then back without repeating the ends


# ------------------------------------------------------------------------------------------
# variations

@pytest.mark.parametrize("spec", [["--member", "dcgan"], ["--member", "vae"], ["--member", "diffusion"],
                                  ["--fusion", "mixture"], ["--fusion", "average"]])
def test_variations_at_strength_0_return_the_source_image(run, tmp_path, spec, capsys):
    ok(["sample", run, *spec, "--n", "3", "--seed", "2", "--out", f"{tmp_path / 'single'}/"])
    source = sorted((tmp_path / "single").glob("*.png"))[1]
    ok(["sample", "--variations-of", source, "--strength", "0", "--n", "3", "--out", f"{tmp_path / 'near'}/"])
    made = sorted((tmp_path / "near").glob("*.png"))
    assert len(made) == 3 and all(np.array_equal(pixels(path), pixels(source)) for path in made)
    if spec[1] == "average":  # a blend of members: the re-noising member varies it, and says so
        assert "made by average(dcgan,vae,diffusion); varied by diffusion" in capsys.readouterr().err
    ok(["sample", "--variations-of", source, "--strength", "0.8", "--n", "3", "--out", tmp_path / "far.png"])
    far = pixels(tmp_path / "far.png")
    assert not np.array_equal(cell(far, 0, 2, 2, 2), pixels(source))


def test_variations_of_a_grid_need_an_index_and_of_a_variation_work(run, tmp_path, capsys):
    ok(["sample", run, "--member", "vae", "--n", "4", "--seed", "1", "--out", tmp_path / "grid.png"])
    assert main(["sample", "--variations-of", str(tmp_path / "grid.png"), "--out", str(tmp_path / "v.png")]) == 2
    assert "give --index" in capsys.readouterr().err.replace("say which with --index", "give --index")
    ok(["sample", "--variations-of", tmp_path / "grid.png", "--index", "2", "--strength", "0", "--n", "1",
        "--out", f"{tmp_path / 'v'}/"])
    third = cell(pixels(tmp_path / "grid.png"), 2, 2, 2, 2)
    assert np.array_equal(pixels(next((tmp_path / "v").glob("*.png"))), third)
    ok(["sample", "--variations-of", tmp_path / "grid.png", "--index", "2", "--n", "4", "--out", f"{tmp_path / 'w'}/"])
    second = sorted((tmp_path / "w").glob("*.png"))[1]
    ok(["sample", "--variations-of", second, "--strength", "0", "--n", "2", "--out", f"{tmp_path / 'ww'}/"])
    assert all(np.array_equal(pixels(p), pixels(second)) for p in (tmp_path / "ww").glob("*.png"))


# ------------------------------------------------------------------------------------------
# the nearest training images

def test_nearest_k_matches_a_brute_force_search():
    rng = np.random.default_rng(1)
    train, query = rng.normal(size=(200, 6)), rng.normal(size=(30, 6))
    distances, rows = nearest_k(query, torch.from_numpy(train), 4)
    for q, found, dist in zip(query, rows, distances):
        brute = np.linalg.norm(train - q, axis=1)
        assert list(found) == list(np.argsort(brute)[:4])
        assert np.allclose(dist, np.sort(brute)[:4])


def test_nearest_training_images_are_the_brute_force_nearest_with_file_names_and_copy_flags(sprite_run):
    session = Session.open(sprite_run)
    evaluator = explore.evaluator_for(session, JudgeRecipe(steps=10, batch_size=16))
    generated = session.member("dcgan").sample(5, torch.Generator().manual_seed(0))
    copied = to_signed_float(torch.from_numpy(session.data.images[[7, 42]]).permute(0, 3, 1, 2))
    images = torch.cat([generated, copied])
    nearest = explore.nearest_training(evaluator, images, 3)
    train, query = evaluator.train_features(), evaluator.extract(images)
    for q, found in zip(query, nearest.neighbours):
        brute = np.linalg.norm(train - q, axis=1)
        # float32 distances: an exact copy comes back as 0 or as ~1e-8, depending on the CPU's kernels
        assert np.allclose([n.distance for n in found], np.sort(brute)[:3], atol=1e-6)
        assert all(np.isclose(brute[n.index], n.distance, atol=1e-6) for n in found)
        assert all(n.name == Path(session.data.paths[n.index]).name and n.name.endswith(".png") for n in found)
    assert [nearest.neighbours[5][0].index, nearest.neighbours[6][0].index] == [7, 42]
    assert nearest.likely_copy is not None and nearest.likely_copy[5:] == (True, True)
    assert nearest.threshold == evaluator.copies().threshold


def test_without_held_out_images_the_copy_flag_is_unavailable_and_cli_writes_the_nearest_sheet(run, tmp_path, capsys):
    ok(["sample", run, "--member", "dcgan", "--n", "2", "--seed", "1", "--out", tmp_path / "a.png", "--nearest", "3",
        "--judge-steps", "5"])
    err = capsys.readouterr().err
    assert "no likely-copy flag" in err and "d.npz #" in err  # an .npz's images are named by their row
    sheet = pixels(tmp_path / "a-nearest.png")
    assert sheet.shape[:2] == (2 * SIZE + 3 * 2, 4 * SIZE + 5 * 2)  # each sample, then its 3 nearest
    meta = read_png_metadata(tmp_path / "a-nearest.png")
    assert len(meta["nearest"]) == 2 and meta["nearest"][0]["likely_copy"] is None
    assert len(meta["nearest"][0]["neighbours"]) == 3
    assert main(["sample", "--variations-of", str(tmp_path / "a-nearest.png"), "--out", str(tmp_path / "x.png")]) == 2


# ------------------------------------------------------------------------------------------
# keeping: sprite sheets and folders

def test_an_exported_sprite_sheet_of_an_rgba_run_keeps_alpha(sprite_run, tmp_path):
    ok(["sample", sprite_run, "--member", "dcgan", "--n", "6", "--seed", "1", "--columns", "3", "--spacing", "1",
        "--out", tmp_path / "sheet.png"])
    with Image.open(tmp_path / "sheet.png") as picture:
        assert picture.mode == "RGBA"
        sheet = np.asarray(picture)
    assert sheet.shape == (2 * SIZE + 1, 3 * SIZE + 2, 4)
    assert (sheet[:, SIZE, 3] == 0).all() and (sheet[SIZE, :, 3] == 0).all()  # transparent gaps
    session = open_for_sampling(sprite_run, None)
    images = to_nhwc_uint8(session.member("dcgan").sample(6, torch.Generator().manual_seed(1)))
    assert images[..., 3].min() < 255  # the sprites are see-through somewhere, and stay so
    for i in range(6):
        assert np.array_equal(cell(sheet, i, 3, 1, 0), images[i])
    ok(["sample", sprite_run, "--member", "dcgan", "--n", "2", "--seed", "1", "--out", f"{tmp_path / 'one'}/"])
    with Image.open(sorted((tmp_path / "one").glob("*.png"))[1]) as single:
        assert single.mode == "RGBA" and np.array_equal(np.asarray(single), images[1])


def test_every_single_png_carries_its_own_recipe(run, tmp_path):
    ok(["sample", run, "--fusion", "mixture", "--n", "3", "--seed", "4", "--out", f"{tmp_path / 'kept'}/"])
    files = sorted((tmp_path / "kept").glob("*.png"))
    assert [f.name for f in files] == [f"mixture-seed4-00{i}.png" for i in (1, 2, 3)]
    recipes = [read_png_metadata(f) for f in files]
    assert [r["index"] for r in recipes] == [0, 1, 2] and all(r["fusion"] == "mixture" and r["n"] == 3 for r in recipes)
    assert all(r["provenance"] in ("dcgan", "vae", "diffusion") for r in recipes)


# ------------------------------------------------------------------------------------------
# same seed, same pixels

def test_same_seed_gives_the_same_pixels_on_every_new_path(run, tmp_path):
    ok(["sample", run, "--member", "diffusion", "--n", "2", "--seed", "0", "--out", f"{tmp_path / 's'}/"])
    source = sorted((tmp_path / "s").glob("*.png"))[0]
    runs = {}
    for name, argv in {
        "variations-diffusion": ["--variations-of", source, "--n", "3", "--strength", "0.5", "--seed", "4"],
        "interpolation": [run, "--member", "vae", "--interpolate", "1,2", "--n", "4"],
        "sheet": [run, "--fusion", "vote", "--n", "4", "--columns", "4", "--spacing", "0", "--seed", "6"],
    }.items():
        for attempt in (1, 2):
            ok(["sample", *argv, "--out", tmp_path / f"{name}-{attempt}.png"])
        runs[name] = pixels(tmp_path / f"{name}-1.png")
        assert np.array_equal(runs[name], pixels(tmp_path / f"{name}-2.png")), name
    ok(["sample", "--variations-of", source, "--n", "3", "--strength", "0.5", "--seed", "5", "--out", tmp_path / "other.png"])
    assert not np.array_equal(pixels(tmp_path / "other.png"), runs["variations-diffusion"])
    for name in runs:  # an explored PNG's recipe makes it again (a sheet's layout is asked for again)
        layout = ["--columns", "4", "--spacing", "0"] if name == "sheet" else []
        ok(["sample", "--from-png", tmp_path / f"{name}-1.png", *layout, "--out", tmp_path / f"{name}-again.png"])
        assert np.array_equal(pixels(tmp_path / f"{name}-again.png"), runs[name]), name
    for attempt in (1, 2):  # the nearest sheet, an animation and a folder of singles, twice
        ok(["sample", run, "--member", "dcgan", "--n", "2", "--seed", "3", "--nearest", "2", "--judge-steps", "5",
            "--out", tmp_path / f"near-{attempt}.png"])
        ok(["sample", run, "--member", "dcgan", "--interpolate", "1,2", "--n", "3", "--out", tmp_path / f"a-{attempt}.webp"])
        ok(["sample", run, "--fusion", "mixture", "--n", "2", "--seed", "3", "--out", f"{tmp_path / f'kept-{attempt}'}/"])
    assert np.array_equal(pixels(tmp_path / "near-1-nearest.png"), pixels(tmp_path / "near-2-nearest.png"))
    assert (tmp_path / "a-1.webp").read_bytes() == (tmp_path / "a-2.webp").read_bytes()
    for one, two in zip(sorted((tmp_path / "kept-1").glob("*.png")), sorted((tmp_path / "kept-2").glob("*.png"))):
        assert np.array_equal(pixels(one), pixels(two))
    session = open_for_sampling(run, None)
    source_dcgan = explore.source_of(session, explore.seed_recipe(session, "dcgan", 9))
    first, second = (explore.variations(session, source_dcgan, 4, 0.3, seed=2) for _ in range(2))
    assert torch.equal(first.images, second.images)
    assert json.dumps(first.recipe, sort_keys=True) == json.dumps(second.recipe, sort_keys=True)


# ------------------------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("args, out, needle", [
    (["--member", "dcgan", "--interpolate", "3"], "x.png", "SEED_A,SEED_B"),
    (["--fusion", "mixture", "--interpolate", "1,2"], "x.png", "--interpolate needs RUN and --member"),
    (["--member", "dcgan", "--interpolate", "1,2", "--n", "1"], "x.png", "2 to 256 steps"),
    (["--member", "judge", "--interpolate", "1,2"], "x.png", "not a generator"),
    (["--member", "dcgan", "--strength", "0.5"], "x.png", "--strength and --index go with --variations-of"),
    (["--member", "dcgan", "--columns", "2"], "x.jpg", "--out must be a .png, .webp or .gif"),
    (["--member", "dcgan", "--judge-steps", "3"], "x.png", "--judge-steps goes with --nearest"),
    (["--member", "dcgan", "--nearest", "99"], "x.png", "between 1 and 16"),
])
def test_explore_errors_exit_2_with_one_line(run, tmp_path, capsys, args, out, needle):
    assert main(["sample", str(run), *args, "--out", str(tmp_path / out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chorus: error:") and needle in err[0], err


@pytest.mark.parametrize("args, needle", [
    (["--variations-of", "missing.png"], "PNG not found"),
    (["--variations-of", "{png}", "--strength", "2"], "between 0 and 1"),
    (["--variations-of", "{png}", "--member", "vae"], "takes the member and parameters from the PNG"),
])
def test_variations_errors_exit_2_with_one_line(run, tmp_path, capsys, args, needle):
    ok(["sample", run, "--member", "vae", "--n", "1", "--out", tmp_path / "one.png"])
    capsys.readouterr()
    args = [a.replace("{png}", str(tmp_path / "one.png")) for a in args]
    assert main(["sample", *args, "--out", str(tmp_path / "v.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("chorus: error:") and needle in err[0], err


def test_npz_training_images_are_named_by_their_row_in_the_file(tmp_path):
    from engine.config import DataConfig
    from engine.data.sources import load_data
    from tests.conftest import shapes_dataset

    images, labels = shapes_dataset(n=600)
    np.savez(tmp_path / "many.npz", images=images, labels=labels)
    data = load_data(DataConfig(source=str(tmp_path / "many.npz"), size=16, channels=1))
    assert data.heldout is not None and len(data.rows) == len(data.images) < 600  # some rows are held out
    assert np.array_equal(data.images[..., 0], images[data.rows])
    named = explore._namer(data, str(tmp_path / "many.npz"))
    assert named(5) == f"many.npz #{data.rows[5]}" and data.rows[-1] > len(data.images) - 1


def test_a_damaged_explore_recipe_exits_2_with_one_line(run, tmp_path, capsys):
    from engine.store.images import save_png

    ok(["sample", run, "--member", "vae", "--interpolate", "1,2", "--n", "3", "--out", tmp_path / "strip.png"])
    recipe = read_png_metadata(tmp_path / "strip.png")
    del recipe["explore"]["interpolate"]["b"]
    save_png(tmp_path / "damaged.png", pixels(tmp_path / "strip.png")[..., None], recipe)
    capsys.readouterr()
    assert main(["sample", "--from-png", str(tmp_path / "damaged.png"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged" in err[0], err
