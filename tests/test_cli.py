"""The CLI contract: exit codes, one-line errors, reproducible samples, PNG parameters."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path, members=("dcgan", "vae", "diffusion")):
    lines = []
    for kind in members:
        lines.append(f"[members.{kind}]\nbatch_size = 16\npace = 1.0")  # one step per ensemble step
        lines.append(f"[members.{kind}.params]")
        lines += [f"{k} = {v}" for k, v in tiny_params(kind).items()]
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def trained_run(tiny_npz, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--data", str(tiny_npz), "--size", "16", "--steps", "6", "--out", str(out),
                 "--device", "cpu", "--seed", "0", "--config", str(write_config(tmp_path)), "--quiet",
                 "--log-every", "2"])
    assert code == 0
    return out


def test_train_writes_run_files_and_resume_continues(trained_run, capsys):
    assert (trained_run / "run.json").exists() and (trained_run / "metrics.jsonl").exists()
    assert (trained_run / "checkpoints" / "step-0000006").is_dir()
    assert main(["resume", str(trained_run), "--steps", "8", "--quiet"]) == 0
    steps = [json.loads(line)["step"] for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2] * 3 + [4] * 3 + [6] * 3 + [8] * 3
    assert "step 6" in capsys.readouterr().err


def test_sample_twice_gives_identical_files(trained_run, tmp_path):
    for name in ("a.png", "b.png"):
        assert main(["sample", str(trained_run), "--member", "dcgan", "--n", "9", "--seed", "1",
                     "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert main(["sample", str(trained_run), "--member", "dcgan", "--n", "9", "--seed", "2",
                 "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "c.png").read_bytes()


def test_sampled_png_carries_parameters_and_reproduces(trained_run, tmp_path):
    out = tmp_path / "mix.png"
    assert main(["sample", str(trained_run), "--fusion", "mixture", "--param", "weights=dcgan:1,vae:3",
                 "--n", "8", "--seed", "4", "--out", str(out)]) == 0
    meta = json.loads(Image.open(out).text["chorus"])
    assert meta["fusion"] == "mixture" and meta["seed"] == 4 and meta["checkpoint"] == "step-0000006"
    assert meta["params"]["weights"] == {"dcgan": 1.0, "vae": 3.0}
    again = tmp_path / "again.png"
    assert main(["sample", "--from-png", str(out), "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))


@pytest.mark.parametrize("args,needle", [
    (["train", "--data", "NOSUCHDIR", "--out", "{tmp}/x"], "data not found"),
    (["train", "--members", "gan9", "--out", "{tmp}/x"], "unknown member 'gan9'"),
    (["train", "--size", "0", "--out", "{tmp}/x"], "size must be >= 8"),
    (["train", "--steps", "-5", "--out", "{tmp}/x"], "steps must be >= 0"),
    (["train", "--steps", "ten", "--out", "{tmp}/x"], "expected an integer"),
    (["train", "--data", "{tmp}/empty", "--out", "{tmp}/x"], "No images"),
    (["train", "--data", "{npz}", "--size", "16", "--out", "/proc/chorus-run"], "cannot write"),
    (["train", "--out", "{tmp}/x", "--config", "{tmp}/nope.toml"], "config file not found"),
    (["resume", "{tmp}"], "not a Chorus run folder"),
    (["sample", "{tmp}/missing", "--member", "dcgan", "--out", "{tmp}/a.png"], "run folder not found"),
    (["train", "--members", "judge", "--out", "{tmp}/x"], "needs a member that makes images"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(args, needle, tmp_path, tiny_npz, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(tmp=tmp_path, npz=tiny_npz) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chorus: error:") and needle in err, err
    assert not (tmp_path / "x").exists()


def test_unknown_config_key_is_named(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nstepz = 3\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "x")]) == 2
    assert "'stepz'" in capsys.readouterr().err


def test_real_entry_point_reports_bad_data_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "main.py", "train", "--data", "NOSUCHDIR", "--out", str(tmp_path / "r")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_a_run_and_its_pngs_work_from_any_directory(tiny_npz, tmp_path, monkeypatch, capsys):
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "pictures.npz").write_bytes(tiny_npz.read_bytes())
    monkeypatch.chdir(tmp_path / "art")  # relative paths, as a user types them
    assert main(["train", "--data", "pictures.npz", "--size", "16", "--steps", "2", "--out", "run",
                 "--members", "vae", "--config", str(write_config(tmp_path, ["vae"])), "--quiet"]) == 0
    assert main(["sample", "run", "--member", "vae", "--n", "4", "--seed", "3", "--out", "a.png"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["resume", "art/run", "--steps", "4", "--quiet"]) == 0  # its data found from here too
    meta = json.loads(Image.open(tmp_path / "art" / "a.png").text["chorus"])
    assert meta["run"] == str(tmp_path / "art" / "run")
    assert main(["sample", "--from-png", "art/a.png", "--out", "b.png"]) == 0
    capsys.readouterr()
    assert main(["resume", "art/run", "--steps", "3"]) == 0  # already past it: says so, trains nothing
    assert "already at step 4" in capsys.readouterr().err
    (tmp_path / "art" / "pictures.npz").rename(tmp_path / "moved.npz")
    assert main(["resume", "art/run", "--steps", "6"]) == 2
    assert "not there any more" in capsys.readouterr().err


def test_from_png_takes_a_new_seed_and_count_and_refuses_other_choices(trained_run, tmp_path, capsys):
    first = tmp_path / "first.png"
    assert main(["sample", str(trained_run), "--member", "vae", "--n", "4", "--seed", "1", "--out", str(first)]) == 0
    assert main(["sample", "--from-png", str(first), "--seed", "7", "--n", "9", "--out", str(tmp_path / "b.png")]) == 0
    meta = json.loads(Image.open(tmp_path / "b.png").text["chorus"])
    assert (meta["member"], meta["seed"], meta["n"]) == ("vae", 7, 9)
    capsys.readouterr()
    for args, needle in (
        (["--from-png", str(first), "--member", "dcgan"], "leave out --member"),
        ([str(trained_run), "--member", "dcgan", "--param", "k=3"], "a member takes none"),
        ([str(trained_run), "--member", "dcgan", "--out", str(tmp_path / "x.jpg")], "must name a .png"),
        ([str(trained_run), "--fusion", "vote", "--param", "voters=dcgn:1,vae:1"], "voter 'dcgn'"),
        ([str(trained_run), "--fusion", "vote", "--param", "voters=diffusion:1,vae:1"], "diffusion cannot vote"),
    ):
        out = [] if "--out" in args else ["--out", str(tmp_path / "y.png")]
        assert main(["sample", *args, *out]) == 2, args
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
