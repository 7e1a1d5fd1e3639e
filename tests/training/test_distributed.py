"""Data-parallel training through torchrun: two CPU processes on the gloo backend, the real CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("dcgan", "vae")


def _config(folder: Path, tiny_npz: Path) -> Path:
    lines = [f'[data]\nsource = "{tiny_npz}"\nsize = 16\nchannels = 1\n',
             '[train]\nseed = 0\ndevice = "cpu"\nlog_every = 10\ncheckpoint_every = 10\npreview_every = 10\n']
    for kind in MEMBERS:
        params = ", ".join(f"{k} = {v}" for k, v in tiny_params(kind).items())
        lines.append(f"[members.{kind}]\nbatch_size = 16\nparams = {{ {params} }}\n")
    path = folder / "tiny.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               str(ROOT / "main.py"), *args, "--distributed", "--quiet"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


def _all_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _records(run: Path) -> list[dict]:
    """The loss lines (a preview's diversity and sharpness line is apart: engine/training/diagnostics.py)."""
    return [r for r in _all_records(run) if "diversity" not in r]


def _last_loss(run: Path, member: str, key: str) -> float:
    return [r for r in _records(run) if r["member"] == member][-1][key]


@pytest.mark.slow
def test_two_gloo_processes_train_write_once_and_resume(tmp_path: Path, tiny_npz: Path):
    config = _config(tmp_path, tiny_npz)
    run = tmp_path / "ddp"
    done = _torchrun("train", "--config", str(config), "--steps", "30", "--out", str(run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("trained to step 30") == 1  # rank 0 alone reports

    # rank 0 alone writes: three checkpoints, each line of the loss log once, previews once
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["step-0000010", "step-0000020", "step-0000030"]
    pairs = Counter((r["member"], r["step"]) for r in _records(run))
    assert pairs == {(m, s): 1 for m in MEMBERS for s in (10, 20, 30)}
    assert len(list((run / "samples").glob("dcgan-step-*.png"))) == 3
    checks = Counter((r["member"], r["step"]) for r in _all_records(run) if "diversity" in r)
    assert checks["dcgan", 10] == checks["dcgan", 30] == 1  # previews checked once, by rank 0

    # the same config in one process: losses on the same scale (gradients are averaged, not summed)
    single = tmp_path / "single"
    assert cli_main(["train", "--config", str(config), "--steps", "30", "--out", str(single), "--quiet"]) == 0
    for member, key in (("vae", "recon"), ("dcgan", "loss_d")):
        ratio = _last_loss(run, member, key) / _last_loss(single, member, key)
        assert 0.6 < ratio < 1.6, (member, key, ratio)

    resumed = _torchrun("resume", str(run), "--steps", "40")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr and "at step 30" in resumed.stderr
    assert (run / "checkpoints" / "step-0000040").is_dir()
    pairs = Counter((r["member"], r["step"]) for r in _records(run))
    assert pairs == {(m, s): 1 for m in MEMBERS for s in (10, 20, 30, 40)}


def test_distributed_outside_torchrun_is_a_clear_error(tmp_path: Path, tiny_npz: Path, capsys, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    code = cli_main(["train", "--data", str(tiny_npz), "--size", "16", "--out", str(tmp_path / "r"), "--distributed"])
    assert code == 2
    assert "torchrun" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_stop_request_ends_every_rank_at_the_same_step_with_one_checkpoint(tmp_path: Path, tiny_npz: Path):
    """SIGTERM to torchrun reaches both ranks; they agree on the step, rank 0 saves, nobody hangs."""
    config = _config(tmp_path, tiny_npz)
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "main.py"), "train", "--config", str(config), "--steps", "1000000", "--out", str(run),
               "--distributed", "--quiet"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):  # until rank 0 logged once: both ranks are inside the training loop
            if (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size:
                break
            with pytest.raises(subprocess.TimeoutExpired):
                process.wait(timeout=0.2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    stopped = [line for line in stderr.splitlines() if "stopped at step" in line]
    assert len(stopped) == 1, stderr[-3000:]
    step = int(stopped[0].split("stopped at step ")[1].split(";")[0])
    assert step % 10 == 0  # a log point, where the ranks agree to stop
    assert (run / "checkpoints" / f"step-{step:07d}").is_dir()
    pairs = Counter((r["member"], r["step"]) for r in _records(run))
    assert set(pairs.values()) == {1}
