"""Out of memory: a member's step that runs out of device memory halves its batch and retries, down
to a floor, then pauses that member; a dataset that would not fit in host memory is refused with
its size, before it is allocated."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.config import DataConfig
from engine.data import memory
from engine.data.sources import load_data
from engine.device import is_out_of_memory
from engine.errors import UserError
from engine.session import Session
from engine.training.events import MemberFailed, StepLogged

pytestmark = pytest.mark.reliability

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)"


def out_of_memory_above(member, largest: int, error=torch.cuda.OutOfMemoryError) -> list[int]:
    """Make the member's step fail as out of memory for batches larger than ``largest``."""
    original, seen = member.train_step, []

    def step(batch):
        seen.append(len(batch.images))
        if len(batch.images) > largest:
            raise error(CUDA_OOM)
        return original(batch)

    member.train_step = step
    return seen


def test_out_of_memory_halves_the_batch_and_retries(tiny_config, tmp_path):
    session = Session.create(tiny_config(["dcgan", "vae"], steps=5), tmp_path / "run")
    seen = out_of_memory_above(session.members["vae"], 4)
    events = []
    finished = session.train(5, [events.append])
    failed = [e for e in events if isinstance(e, MemberFailed)]
    assert [(f.member, f.step, f.action) for f in failed] == [("vae", 1, "smaller batch")] * 2
    assert "out of memory at batch size 16; retrying with 8" in failed[0].message
    assert "at batch size 8; retrying with 4" in failed[1].message
    assert seen == [16, 8, 4, 4, 4, 4, 4]  # one step retried twice, the others at the smaller batch
    assert session.members["vae"].step == 5 and session.members["dcgan"].step == 5
    assert finished.reason == "done" and session.run.latest_checkpoint().name == "step-0000005"


def test_out_of_memory_at_the_floor_pauses_that_member_only(tiny_config, tmp_path):
    session = Session.create(tiny_config(["dcgan", "vae"], steps=5), tmp_path / "run")
    out_of_memory_above(session.members["vae"], 0, RuntimeError)  # the MPS / plain RuntimeError form
    events = []
    finished = session.train(5, [events.append])
    actions = [e.action for e in events if isinstance(e, MemberFailed)]
    assert actions == ["smaller batch", "smaller batch", "paused"]
    assert "out of memory even at batch size 4" in [e for e in events if isinstance(e, MemberFailed)][-1].message
    assert [e.step for e in events if isinstance(e, StepLogged) and e.member == "dcgan"] == [1, 2, 3, 4, 5]
    assert session.members["vae"].step == 0 and finished.reason == "done"


def test_other_runtime_errors_are_not_mistaken_for_out_of_memory(tiny_config, tmp_path):
    session = Session.create(tiny_config(["vae"], steps=3), tmp_path / "run")

    def broken(batch):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    session.members["vae"].train_step = broken
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        session.train(3)
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x")) and is_out_of_memory(RuntimeError(CUDA_OOM))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_available_memory_is_read_without_psutil():
    available = memory.available_memory()
    assert available is None or available > 0


def test_a_dataset_too_big_for_memory_is_refused_with_its_size(tiny_npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_memory", lambda: 100_000)
    with pytest.raises(UserError) as caught:  # 96 images × 64 × 64 × 3 × 2 copies = 2.25 MB
        load_data(DataConfig(source=str(tiny_npz), size=64, channels=3))
    assert "96 images at 64×64×3 would take 2.2 MB of memory, but only 97.7 KB is available" in str(caught.value)
    load_data(DataConfig(source=str(tiny_npz), size=16, channels=1))  # 48 KB fits
    assert main(["train", "--data", str(tiny_npz), "--size", "64", "--channels", "3", "--out",
                 str(tmp_path / "run"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "would take" in err
    assert not (tmp_path / "run").exists()


def test_an_image_folder_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    decoded = []
    monkeypatch.setattr("engine.data.folder._load_one", lambda *args: decoded.append(args))
    with pytest.raises(UserError, match=r"3 images at 32×32×3 would take 18.0 KB"):
        load_data(DataConfig(source=str(tmp_path), size=32, channels=3))
    assert not decoded


def test_unknown_available_memory_skips_the_check(tiny_npz, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    assert load_data(DataConfig(source=str(tiny_npz), size=16)).images.shape == (96, 16, 16, 1)
