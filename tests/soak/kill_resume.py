"""Kill-and-resume soak: a real ``python main.py train`` is SIGKILLed at random moments and resumed.

    python -m tests.soak.kill_resume --trials 20 [--seed 0] [--steps 200] [--checkpoint-every 10]

Each trial starts the run's next process (``train`` for a new run folder, ``resume`` after that),
kills it with SIGKILL either after a random delay or while it is held inside a checkpoint save
(``CHORUS_TEST_HOLD_SAVE``: after a member file, before the rename, before pruning), then checks
the folder: run.json and the latest checkpoint load, and the steps logged past that checkpoint
(the steps lost) are at most one checkpoint interval. A process that finishes before its kill
completes its run (checked: every step logged once per member, the final checkpoint, the same
losses as an uninterrupted reference run) and the next trial starts a new run. Prints one line per
trial and a summary; exit 1 if any trial failed.

The helpers here also serve tests/reliability/test_kill_resume.py.
"""
from __future__ import annotations

import argparse
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = ("dcgan", "vae")
TINY = {"dcgan": {"width": 8, "latent": 16}, "vae": {"width": 8, "latent": 8}}
STAGES = ("files", "rename", "prune")


@dataclass(frozen=True)
class Setup:
    data: Path
    config: Path
    steps: int
    checkpoint_every: int


def prepare(folder: Path, steps: int, checkpoint_every: int) -> Setup:
    """A tiny .npz of shapes and a TOML config with tiny members, in ``folder``."""
    from tests.conftest import shapes_dataset

    folder.mkdir(parents=True, exist_ok=True)
    images, labels = shapes_dataset()
    data = folder / "shapes.npz"
    np.savez(data, images=images, labels=labels)
    lines = ["[train]", f"checkpoint_every = {checkpoint_every}", "log_every = 1", "preview_every = 1000000",
             "keep_checkpoints = 3"]
    for kind in MEMBERS:
        lines += [f"[members.{kind}]", "batch_size = 16", f"[members.{kind}.params]"]
        lines += [f"{k} = {v}" for k, v in TINY[kind].items()]
    config = folder / "tiny.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Setup(data, config, steps, checkpoint_every)


def command(setup: Setup, run: Path) -> list[str]:
    """``resume`` once the run folder holds a run, ``train`` before (a kill may come before run.json)."""
    main = [sys.executable, str(ROOT / "main.py")]
    if (run / "run.json").exists():
        return main + ["resume", str(run), "--steps", str(setup.steps), "--quiet"]
    return main + ["train", "--data", str(setup.data), "--size", "16", "--steps", str(setup.steps), "--out", str(run),
                   "--device", "cpu", "--seed", "0", "--config", str(setup.config), "--quiet"]


def launch(setup: Setup, run: Path, hold: tuple[str, int, Path] | None = None) -> subprocess.Popen:
    """Start the run's next process; ``hold`` = (stage, step, fifo) stops it inside that save."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("CHORUS_TEST_HOLD_SAVE", None)
    if hold is not None:
        stage, step, fifo = hold
        env["CHORUS_TEST_HOLD_SAVE"] = f"{stage}:{step}:{fifo}"
    log = open(run.with_name(run.name + ".stderr"), "ab")
    try:
        return subprocess.Popen(command(setup, run), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()


def kill_after(proc: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL after ``seconds``; False if the process had already exited by itself."""
    try:
        proc.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def open_fifo(path: Path) -> int:
    """A FIFO the held process writes to once it is inside the save; opened before it starts."""
    os.mkfifo(path)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def kill_in_save(proc: subprocess.Popen, fifo_fd: int, timeout: float) -> bool:
    """Wait until the process says it is held inside the save, then SIGKILL it there.

    False if it never got there (it finished or failed first); it is killed either way."""
    deadline = time.monotonic() + timeout
    reached = False
    while not reached and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([fifo_fd], [], [], 0.2)
        reached = bool(ready) and bool(os.read(fifo_fd, 16))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return reached


def inspect(run: Path) -> tuple[int, int]:
    """(last step logged, step of the latest checkpoint) after a kill; raises if the run cannot resume.

    A folder without run.json is a run killed before it existed: nothing trained, nothing lost."""
    from engine.session import Session
    from engine.store.run_folder import RunFolder

    if not (run / "run.json").exists():
        return 0, 0
    logged = max((int(r.get("step", 0)) for r in RunFolder.open(run).read_metrics()), default=0)
    session = Session.open(run, "cpu", with_data=False)  # loads every member's tensors: a full check
    return logged, session.step


def verify_complete(run: Path, steps: int) -> dict[tuple[str, int], dict[str, float]]:
    """Every ensemble step in which a member trained (all of them at pace ≥ 1) logged exactly once for
    it, and the final checkpoint loads at ``steps``."""
    from engine.session import Session
    from engine.store.run_folder import RunFolder
    from engine.training.pace import quota

    records = RunFolder.open(run).read_metrics()
    session = Session.open(run, "cpu", with_data=False)
    for kind in MEMBERS:
        logged = [r["step"] for r in records if r["member"] == kind]
        pace = session.config.member(kind).pace
        if logged != [s for s in range(1, steps + 1) if quota(pace, s) > quota(pace, s - 1)]:  # it trained
            raise AssertionError(f"{run}: {kind} logged steps {logged[:5]}…{logged[-5:]} (n={len(logged)})")
    if session.step != steps or session.checkpoint.name != f"step-{steps:07d}":
        raise AssertionError(f"{run}: final checkpoint {session.checkpoint} at step {session.step}")
    return {(r["member"], r["step"]): {k: v for k, v in r.items() if k not in ("member", "step", "time")}
            for r in records}


def same_losses(a: dict, b: dict, tolerance: float = 1e-5) -> bool:
    return a.keys() == b.keys() and all(abs(a[k][name] - b[k][name]) <= tolerance * (1 + abs(a[k][name]))
                                        for k in a for name in a[k])


@dataclass
class Trial:
    number: int
    mode: str
    killed: bool
    survived: bool
    lost: int
    note: str


def soak(trials: int, seed: int, steps: int, checkpoint_every: int, folder: Path) -> list[Trial]:
    rng = random.Random(seed)
    setup = prepare(folder, steps, checkpoint_every)
    started = time.monotonic()
    reference = folder / "reference"
    launch(setup, reference).wait()
    full = time.monotonic() - started
    expected = verify_complete(reference, steps)
    print(f"reference run: {steps} steps in {full:.1f} s (process start included)", flush=True)
    results: list[Trial] = []
    runs = 0
    for number in range(1, trials + 1):
        run = folder / f"run-{runs}"
        trial, completed = one_trial(number, rng, setup, run, full, expected)
        results.append(trial)
        print(_line(trial), flush=True)
        runs += completed
    run = folder / f"run-{runs}"
    if run.exists():  # finish the last run and check it against the reference
        proc = launch(setup, run)
        proc.wait()
        same = proc.returncode == 0 and same_losses(verify_complete(run, steps), expected)
        print(f"final resume of {run.name}: exit {proc.returncode}, "
              f"{'same losses as the reference run' if same else 'FAILED or different from the reference run'}",
              flush=True)
        if not same:
            results.append(Trial(trials + 1, "final resume", False, False, 0, "final resume failed or differs"))
    return results


def one_trial(number: int, rng: random.Random, setup: Setup, run: Path, full: float,
              expected: dict) -> tuple[Trial, bool]:
    """Start the run's next process, kill it, inspect the folder. (trial, whether the run completed)."""
    before = inspect(run)[1]
    log_before = _stamp(run / "metrics.jsonl")
    if rng.random() < 0.35:
        stage = rng.choice(STAGES)
        every = setup.checkpoint_every
        at = min((before // every + 1 + rng.randrange(3)) * every, setup.steps)
        fifo = run.with_name(f"hold-{number}")
        fd = open_fifo(fifo)
        proc = launch(setup, run, (stage, at, fifo))
        kill_in_save(proc, fd, timeout=3 * full + 30)
        os.close(fd)
        mode = f"in save ({stage}, step {at})"
    else:
        delay = rng.uniform(0.2, full)
        proc = launch(setup, run)
        kill_after(proc, delay)
        mode = f"after {delay:.2f} s"
    killed = proc.returncode == -signal.SIGKILL
    try:
        if proc.returncode == 0:
            same = same_losses(verify_complete(run, setup.steps), expected)
            note = "run completed, same losses as the reference run" if same else "losses DIFFER from the reference"
            return Trial(number, mode, False, same, 0, note), True
        if not killed:
            return Trial(number, mode, False, False, 0, f"process failed (exit {proc.returncode})"), False
        logged, saved = inspect(run)
        if _stamp(run / "metrics.jsonl") == log_before and saved == before:
            # killed while starting up: the log lines past the checkpoint are the previous trial's loss
            return Trial(number, mode, True, True, 0, f"killed before it trained; resumes at {saved}"), False
        lost = max(0, logged - saved)
        ok = saved >= before and lost <= setup.checkpoint_every
        return Trial(number, mode, True, ok, lost, f"logged {logged}, resumes at {saved}"), False
    except Exception as exc:  # noqa: BLE001 - a run that cannot be inspected is a failed trial
        return Trial(number, mode, killed, False, -1, f"{type(exc).__name__}: {exc}"), False


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_size, status.st_mtime_ns


def _line(trial: Trial) -> str:
    state = "survived" if trial.survived else "FAILED"
    kill = "killed" if trial.killed else "not killed"
    return f"trial {trial.number:2d}: {kill} {trial.mode}: {state}, steps lost {trial.lost} ({trial.note})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.kill_resume", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="chorus-soak-"))
    try:
        results = soak(args.trials, args.seed, args.steps, args.checkpoint_every, folder)
    finally:
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    killed = [t for t in results if t.killed]
    survived = sum(t.survived for t in results)
    print(f"\nsurvived {survived}/{len(results)} trials ({len(killed)} killed, "
          f"{len(results) - len(killed)} finished before their kill); checkpoint interval {args.checkpoint_every}")
    print("steps lost per trial: " + " ".join(str(t.lost) for t in results))
    print(f"most steps lost: {max((t.lost for t in results), default=0)} (limit {args.checkpoint_every})")
    return 0 if survived == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
