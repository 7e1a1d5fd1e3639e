"""Disk trouble: an unwritable output folder is refused in one line; a save that fails (disk full,
permission denied) is reported, training goes on with the last good checkpoint kept, and the next
save tries again."""
from __future__ import annotations

import errno
import json
import os

import pytest

from engine.cli import main
from engine.session import Session
from engine.store import checkpoints as ckpt
from engine.store.images import save_png
from engine.store.run_folder import RunFolder
from engine.training.events import CheckpointSaved, PreviewReady, SaveFailed, StepLogged
from tests.test_cli import write_config

pytestmark = pytest.mark.reliability


def failing_saves(monkeypatch, steps: set[int], error: int = errno.ENOSPC) -> None:
    """Checkpoint writes for these steps fail part-way, as on a full disk."""
    real = ckpt.save_file

    def save_file(tensors, path):
        if any(f"step-{s:07d}" in path for s in steps):
            raise OSError(error, os.strerror(error), path)
        real(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", save_file)


def test_output_folder_that_cannot_be_made_is_refused_in_one_line(tiny_npz, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    assert main(["train", "--data", str(tiny_npz), "--size", "16", "--out", str(tmp_path / "a-file" / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write to output folder" in err


@pytest.mark.parametrize("error,reason", [(errno.ENOSPC, "No space left on device"),
                                          (errno.EACCES, "Permission denied")])
def test_failed_save_is_reported_training_goes_on_and_the_next_save_retries(tiny_config, tmp_path, monkeypatch,
                                                                            error, reason):
    session = Session.create(tiny_config(["vae"], steps=6, checkpoint_every=2), tmp_path / "run")
    failing_saves(monkeypatch, {4}, error)
    events = []
    finished = session.train(6, [events.append])
    saves = [(type(e).__name__, e.step) for e in events if isinstance(e, (CheckpointSaved, SaveFailed))]
    assert saves == [("CheckpointSaved", 2), ("SaveFailed", 4), ("CheckpointSaved", 6)]
    failed = next(e for e in events if isinstance(e, SaveFailed))
    assert reason in failed.message and "last good checkpoint is step-0000002" in failed.message
    assert "next checkpoint tries again" in failed.message
    assert finished.step == 6 and [e.step for e in events if isinstance(e, StepLogged)] == [1, 2, 3, 4, 5, 6]
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000002", "step-0000006"]  # no temporary left
    assert Session.open(tmp_path / "run").step == 6


def test_failed_final_save_exits_1_keeps_the_last_checkpoint_and_resume_retries(tiny_npz, tmp_path, monkeypatch,
                                                                                 capsys):
    run = tmp_path / "run"
    failing_saves(monkeypatch, {4, 5, 6})
    code = main(["train", "--data", str(tiny_npz), "--size", "16", "--steps", "6", "--out", str(run), "--device",
                 "cpu", "--config", str(write_config(tmp_path, ("vae",))), "--checkpoint-every", "3",
                 "--log-every", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "chorus: could not save at step 6: cannot save checkpoint" in err and "No space left" in err
    assert "trained to step 6 but could not save it; the last saved checkpoint is" in err and "step-0000003" in err
    monkeypatch.undo()  # space freed: resume continues from step 3 and finishes
    assert main(["resume", str(run), "--quiet"]) == 0
    assert Session.open(run).step == 6
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_failed_log_append_is_reported_once_and_training_goes_on(tiny_config, tmp_path, monkeypatch):
    session = Session.create(tiny_config(["vae"], steps=4, checkpoint_every=100), tmp_path / "run")

    def full(self, records):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunFolder, "append_metrics", full)
    events = []
    session.train(4, [events.append])
    failed = [e for e in events if isinstance(e, SaveFailed)]
    assert len(failed) == 1 and "cannot append to the loss log: No space left on device" in failed[0].message
    assert [e.step for e in events if isinstance(e, StepLogged)] == [1, 2, 3, 4]
    assert session.run.latest_checkpoint().name == "step-0000004"


def test_failed_preview_is_reported_and_still_shown(tiny_config, tmp_path, monkeypatch):
    session = Session.create(tiny_config(["vae"], steps=2, preview_every=2), tmp_path / "run")
    (tmp_path / "a-file").write_text("not a folder")

    def refuse(path, image, metadata=None):  # a real failure from the OS: a folder that is a file
        return save_png(tmp_path / "a-file" / "x.png", image, metadata)

    monkeypatch.setattr("engine.training.trainer.save_png", refuse)
    events = []
    session.train(2, [events.append])
    assert [type(e).__name__ for e in events if isinstance(e, (SaveFailed, PreviewReady))] == \
        ["SaveFailed", "PreviewReady"]
