"""Every number from the command line or a config file is range-checked before anything is read or
written (one line, exit 2), and a config file's unknown keys are refused by name."""
from __future__ import annotations

import pytest

from engine.cli import main

pytestmark = pytest.mark.reliability

TRAIN = ["train", "--data", "{npz}", "--size", "16", "--out", "{tmp}/x"]


@pytest.mark.parametrize("args,needle", [
    (TRAIN + ["--steps", "-1"], "steps must be >= 0, got -1"),
    (TRAIN + ["--steps", "2000000000"], "steps must be <= 1000000000"),
    (TRAIN + ["--steps", "1e3"], "expected an integer, got '1e3'"),
    (TRAIN + ["--seed", "-1"], "seed must be >= 0, got -1"),
    (["train", "--data", "{npz}", "--size", "7", "--out", "{tmp}/x"], "size must be >= 8, got 7"),
    (["train", "--data", "{npz}", "--size", "257", "--out", "{tmp}/x"], "size must be <= 256, got 257"),
    (TRAIN + ["--channels", "2"], "invalid choice: 2"),
    (TRAIN + ["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (TRAIN + ["--batch-size", "70000"], "batch_size must be <= 65536"),
    (TRAIN + ["--checkpoint-every", "0"], "checkpoint_every must be >= 1, got 0"),
    (TRAIN + ["--log-every", "0"], "log_every must be >= 1, got 0"),
    (TRAIN + ["--preview-every", "-3"], "preview_every must be >= 1, got -3"),
    (["resume", "{tmp}/nowhere", "--steps", "-1"], "argument --steps: must be between 0 and 1000000000, got -1"),
    (["resume", "{tmp}/nowhere", "--steps", "10000000000"], "argument --steps: must be between 0 and"),
    (["sample", "{tmp}/nowhere", "--member", "vae", "--n", "0", "--out", "{tmp}/a.png"],
     "argument --n: must be between 1 and 100000, got 0"),
    (["sample", "{tmp}/nowhere", "--member", "vae", "--n", "100001", "--out", "{tmp}/a.png"],
     "argument --n: must be between 1 and 100000"),
    (["sample", "{tmp}/nowhere", "--member", "vae", "--seed", "-1", "--out", "{tmp}/a.png"],
     "argument --seed: must be between 0 and"),
    (["evaluate", "{tmp}/nowhere", "--n", "5"], "argument --n: must be between 10 and 100000, got 5"),
    (["evaluate", "{tmp}/nowhere", "--seed", "-1"], "argument --seed: must be between 0 and"),
    (["evaluate", "{tmp}/nowhere", "--judge-steps", "0"], "argument --judge-steps: must be between 1 and 1000000"),
])
def test_numbers_out_of_range_exit_2_in_one_line_before_anything_is_read(args, needle, tmp_path, tiny_npz,
                                                                         capsys):
    assert main([a.format(tmp=tmp_path, npz=tiny_npz) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chorus: error:") and needle in err, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "a.png").exists()


@pytest.mark.parametrize("toml,needle", [
    ("[trian]\nsteps = 3\n", "unknown key 'trian' in the config"),
    ("[data]\nsise = 28\n", "unknown key 'sise' in [data]"),
    ("[train]\nstepz = 3\n", "unknown key 'stepz' in [train]"),
    ("[members.vae]\nbatchsize = 8\n", "unknown key 'batchsize' in [members.vae]"),
    ("[members.vae.optim]\nlearning_rate = 0.1\n", "unknown key 'learning_rate' in [members.vae] optim"),
    ("[members.vae.params]\nbogus = 1\n", "unknown key 'bogus' in [members.vae] params"),
    ("[members.vae.optim]\nlr = -1\n", "lr must be > 0.0, got -1"),
    ("[members.vae.optim]\nbetas = [2, 0.9]\n", "betas[0] must be <= 0.9999, got 2"),
    ("[train]\nkeep_checkpoints = 0\n", "keep_checkpoints must be >= 1, got 0"),
    ("[train]\nsteps = 1.5\n", "steps must be an integer, got 1.5"),
    ("[train]\nseed = true\n", "seed must be a number, got True"),
    ("[members.vae.optim]\nlr = nan\n", "lr must be finite, got nan"),
    ("[members.gan9]\n", "unknown member 'gan9'"),
    ("steps = 3\n", "unknown key 'steps' in the config"),
    ("[train\n", "is not valid TOML"),
])
def test_config_file_keys_and_values_are_checked_by_name(toml, needle, tmp_path, tiny_npz, capsys):
    config = tmp_path / "c.toml"
    config.write_text(toml)
    assert main(["train", "--data", str(tiny_npz), "--size", "16", "--config", str(config),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "x").exists()
