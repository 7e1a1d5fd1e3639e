"""SIGKILL at any moment leaves a run that resumes: real processes killed mid-training and mid-save,
and the pieces that make it so (atomic saves, hidden temporaries, tolerant and truncated logs)."""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
import torch

from engine.session import Session
from engine.store import checkpoints as ckpt
from engine.store.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from engine.store.run_folder import RunFolder
from tests.soak.kill_resume import inspect, kill_after, kill_in_save, launch, open_fifo, prepare, verify_complete

pytestmark = pytest.mark.reliability


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no except clause catches it."""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(signal, "SIGKILL"), reason="needs POSIX FIFOs and SIGKILL")
def test_sigkill_during_training_and_saves_always_resumes(tmp_path):
    setup = prepare(tmp_path, steps=30, checkpoint_every=1)
    run, folder = tmp_path / "run", tmp_path / "run" / "checkpoints"
    reached_at = 0.0
    for number, (stage, step) in enumerate([("files", 4), ("rename", 9), ("prune", 15)]):
        fifo = tmp_path / f"hold-{number}"
        fd = open_fifo(fifo)
        started = time.monotonic()
        proc = launch(setup, run, (stage, step, fifo))
        assert kill_in_save(proc, fd, timeout=180), (stage, (tmp_path / "run.stderr").read_text())
        reached_at = time.monotonic() - started
        half_written = list(folder.glob(f".tmp-step-{step:07d}-*"))
        logged, saved = inspect(run)  # opens run.json and loads every member of the latest checkpoint
        if stage == "prune":  # renamed into place, the older ones not pruned yet
            assert not half_written and saved == step and len(list_checkpoints(folder)) == 4
        else:  # killed with the new checkpoint half written: the previous one is the latest, intact
            assert half_written and saved == step - 1
        assert logged - saved <= setup.checkpoint_every
    proc = launch(setup, run)  # then at a random moment of a resumed process
    kill_after(proc, random.Random(6).uniform(0.5, 1.5) * reached_at)
    logged, saved = inspect(run)
    assert 15 <= saved and logged - saved <= setup.checkpoint_every
    proc = launch(setup, run)
    assert proc.wait(timeout=300) == 0, (tmp_path / "run.stderr").read_text()
    verify_complete(run, 30)  # every step logged exactly once per member; step 30 saved
    assert not list(folder.glob(".tmp-*")) and not list(folder.glob(".del-*"))


def test_interrupted_save_leaves_the_previous_checkpoint_valid(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, 1, {"a": {"w": torch.ones(3)}, "b": {"w": torch.ones(2)}}, {}, keep=3)
    real_save = ckpt.save_file
    calls = []

    def dies_on_second_file(tensors, path):
        calls.append(path)
        if len(calls) == 2:
            raise Crash()
        real_save(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", dies_on_second_file)
    with pytest.raises(Crash):
        save_checkpoint(folder, 2, {"a": {"w": torch.zeros(3)}, "b": {"w": torch.zeros(2)}}, {}, keep=3)
    assert [p.name for p in list_checkpoints(folder)] == ["step-0000001"]
    assert list(folder.glob(".tmp-step-0000002-*"))  # the half-written one stays hidden
    _, states = load_checkpoint(folder / "step-0000001")
    assert states["a"]["w"].tolist() == [1.0, 1.0, 1.0]
    monkeypatch.setattr(ckpt, "save_file", real_save)
    save_checkpoint(folder, 3, {"a": {"w": torch.zeros(3)}, "b": {"w": torch.zeros(2)}}, {}, keep=3)
    assert not list(folder.glob(".tmp-*"))  # the next save clears the leftover


def test_latest_never_names_a_hidden_or_half_deleted_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    for step in (1, 2):
        save_checkpoint(folder, step, {"m": {"w": torch.full((2,), float(step))}}, {}, keep=2)
    (folder / ".tmp-step-0000009-123").mkdir()  # a save cut short
    real_rmtree = ckpt.shutil.rmtree

    def dies_while_deleting(path, *args, **kwargs):
        if ".del-" in str(path) and path.exists():
            raise Crash()
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(ckpt.shutil, "rmtree", dies_while_deleting)
    with pytest.raises(Crash):  # step 3 is in place; pruning step 1 dies after hiding it
        save_checkpoint(folder, 3, {"m": {"w": torch.full((2,), 3.0)}}, {}, keep=2)
    assert [p.name for p in list_checkpoints(folder)] == ["step-0000002", "step-0000003"]
    for path in list_checkpoints(folder):
        load_checkpoint(path)  # every listed checkpoint is whole
    run = RunFolder(tmp_path, None, "id", "")  # type: ignore[arg-type]
    assert run.latest_checkpoint().name == "step-0000003"
    monkeypatch.setattr(ckpt.shutil, "rmtree", real_rmtree)
    save_checkpoint(folder, 4, {"m": {"w": torch.full((2,), 4.0)}}, {}, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000003", "step-0000004"]


def test_same_step_saved_again_is_swapped_in_whole(tmp_path):
    folder = tmp_path / "checkpoints"
    save_checkpoint(folder, 5, {"m": {"w": torch.zeros(2)}}, {"elapsed": 1.0}, keep=1)
    save_checkpoint(folder, 5, {"m": {"w": torch.ones(2)}}, {"elapsed": 2.0}, keep=1)
    meta, states = load_checkpoint(folder / "step-0000005")
    assert meta["elapsed"] == 2.0 and states["m"]["w"].tolist() == [1.0, 1.0]
    assert [p.name for p in folder.iterdir()] == ["step-0000005"]


def test_log_lines_cut_by_a_crash_are_tolerated_and_resume_truncates_past_the_checkpoint(tiny_config, tmp_path):
    config = tiny_config(["vae"], steps=6, checkpoint_every=4)
    session = Session.create(config, tmp_path / "run")
    session.train(6)
    log = tmp_path / "run" / "metrics.jsonl"
    with log.open("a") as handle:  # as if killed at step 7, while writing its log line
        handle.write('{"time": 1.0, "member": "vae", "step": 7, "loss": 1.0}\n{"time": 1.1, "member": "va')
    run = RunFolder.open(tmp_path / "run")
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5, 6, 7]
    import shutil

    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-0000006")  # resume from step 4
    resumed = Session.open(tmp_path / "run")
    assert resumed.step == 4
    resumed.train(6)
    lines = log.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
