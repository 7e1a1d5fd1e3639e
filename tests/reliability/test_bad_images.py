"""A user's picture folder, end to end through the CLI: the bad-image corpus of tests/data/test_folder.py
trains (bad files skipped and listed), a folder smaller than one batch trains with replacement and
says so, and a folder with nothing usable gives one clear line and exit 2. (The per-file cases,
one by one, are the reliability-marked tests in tests/data/test_folder.py.)"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from tests.data.test_folder import BAD, GOOD, build_corpus
from tests.test_cli import write_config

pytestmark = pytest.mark.reliability


def train(data, out, *extra: str) -> int:
    return main(["train", "--data", str(data), "--size", "16", "--channels", "3", "--steps", "2", "--out", str(out),
                 "--device", "cpu", "--config", str(write_config(out.parent, ("vae",))), "--quiet", *extra])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="the corpus holds a FIFO")
def test_the_whole_bad_image_corpus_trains_and_lists_what_it_skipped(tmp_path, capsys):
    build_corpus(tmp_path / "corpus")
    assert train(tmp_path / "corpus", tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert f"Loaded {len(GOOD)} images from {tmp_path / 'corpus'}; skipped {len(BAD)}: " in err
    assert "truncated.png (truncated image file)" in err and "html.png (not an image" in err and "and 1 more" in err
    assert (tmp_path / "run" / "checkpoints" / "step-0000002").is_dir()


def test_fewer_images_than_one_batch_trains_with_replacement_and_says_so(tmp_path, capsys):
    (tmp_path / "pics").mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 60 * i, dtype=np.uint8)).save(tmp_path / "pics" / f"{i}.png")
    assert train(tmp_path / "pics", tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert "Loaded 3 images" in err
    assert "fewer images (3) than one batch (16); batches are drawn with replacement" in err


@pytest.mark.parametrize("make,needle", [
    (lambda d: None, "No images (.png, .jpg, .jpeg, .webp, .bmp, .gif, .tif, .tiff) found in"),
    (lambda d: (d / "notes.txt").write_text("hello"), "No images"),
    (lambda d: [(d / "a.png").write_bytes(b""), (d / "b.jpg").write_text("<html></html>")],
     "None of the 2 image files in"),
])
def test_a_folder_with_nothing_usable_gives_one_clear_line(tmp_path, capsys, make, needle):
    (tmp_path / "pics").mkdir()
    make(tmp_path / "pics")
    assert train(tmp_path / "pics", tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chorus: error:") and needle in err, err
    assert not (tmp_path / "run").exists()
