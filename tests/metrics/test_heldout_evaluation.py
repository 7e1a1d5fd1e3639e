"""Evaluation of a folder run: the reference is the held-out share, the floor is real training images
against it, and every row says how many of its samples look like copies of training images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.data.dataset import to_signed_float
from engine.evaluation import evaluate
from engine.members.vae import VAE
from engine.metrics.features import JudgeRecipe
from engine.metrics.memorisation import QUANTILE, copy_test, nearest_distances
from engine.session import Session
from tests.data.test_colour_folders import sprites, tiny_run_config  # noqa: F401 - the fixture

PLAN = {"mixture": ("mixture", {"weights": "auto"}), "vote": ("vote", {"k": 2})}


@pytest.fixture(scope="module")
def folder_run(sprites, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("folder-run") / "run"
    session = Session.create(tiny_run_config(sprites, members=("dcgan", "vae", "judge"), steps=6), out)
    session.train(6)
    return out


def test_a_copying_generator_is_reported_as_copies(folder_run, monkeypatch):
    session = Session.open(folder_run)
    training = to_signed_float(torch.from_numpy(session.data.images).permute(0, 3, 1, 2))

    def copies(self, n, generator, **_):  # a VAE that hands back training pictures
        picks = torch.randint(len(training), (n,), generator=generator)
        return training[picks].clone()

    monkeypatch.setattr(VAE, "sample", copies)
    report = evaluate(session, 60, PLAN, judge_recipe=JudgeRecipe(steps=40), fit_samples=60)
    assert report.reference == "60 held-out images (never trained on)"
    assert report.members["vae"].memorisation == 1.0
    assert report.members["dcgan"].memorisation < 0.5
    for row in [*report.members.values(), *report.fusions.values()]:
        assert row.memorisation is not None and 0.0 <= row.memorisation <= 1.0
    assert report.memorisation["threshold"] >= 0 and report.memorisation["heldout_rate"] >= QUANTILE
    # the floor: as many real training images against the held-out ones; a copier scores about it
    assert report.floor_fd < report.members["dcgan"].fd
    assert report.members["vae"].fd < 3 * report.floor_fd + 1


def test_cli_json_has_memorisation_for_every_row(folder_run, capsys):
    assert main(["evaluate", str(folder_run), "--n", "30", "--json", "--judge-steps", "20",
                 "--fusions", "average,vote"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = [*document["members"].values(), *document["fusions"].values()]
    assert len(rows) == 4 and all(isinstance(row["memorisation"], float) for row in rows)
    assert "held-out" in document["reference"] and document["memorisation"]["test"]


def test_nearest_distances_match_a_brute_force_search():
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(300, 8)), rng.normal(size=(50, 8))
    brute = np.array([np.min(np.linalg.norm(train - q, axis=1)) for q in query])
    assert np.allclose(nearest_distances(query, torch.from_numpy(train)), brute)
    test = copy_test(train, query)
    assert test.rate(train[:20]) == 1.0 and test.rate(query) == pytest.approx(test.heldout_rate)
