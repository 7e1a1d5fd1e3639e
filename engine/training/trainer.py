"""The trainer: round-robin over members on one device, events to callbacks, stop/pause each step.

The same loop serves the CLI, the tests and the GUI's child process. Losses stay on the device
between log points; one synchronisation per ``log_every`` steps turns them into floats.

Failures stay local (see health.py): a NaN/Inf loss rolls that member back, an out-of-memory error
halves its batch, a member that keeps failing is paused while the others go on. On the CPU each
step's losses are checked as they come (reading a CPU float costs nothing); on a GPU only at log
points, where the sums are read anyway, so the hot path never waits for the device. A checkpoint,
log line or preview that cannot be written is reported (SaveFailed) and training goes on; the next
periodic save tries again and the last good checkpoint stays as it is.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Callable

import torch

from engine.device import is_out_of_memory
from engine.errors import UserError
from engine.members.base import Member
from engine.store.checkpoints import CheckpointWriteError
from engine.store.images import grid, save_png, to_nhwc_uint8
from engine.training.control import Control
from engine.training.events import (CheckpointSaved, Event, Finished, MemberFailed, PreviewReady, SaveFailed,
                                    StepLogged)
from engine.training.health import Health, weights_finite

Callback = Callable[[Event], None]
PREVIEW_COUNT = 16
PREVIEW_SEED = 20241126


class Trainer:
    def __init__(self, session, callbacks: list[Callback] | None = None, control: Control | None = None):
        self.session = session
        self.callbacks = list(callbacks or [])
        self.control = control or Control()
        self.check_each_step = session.device.type == "cpu"
        self.health = Health(list(session.members.values()), self.emit)
        self.save_error: str | None = None      # why the latest checkpoint attempt failed, if it did
        self._log_failing = False
        self._sums: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
        self._counts: dict[str, int] = defaultdict(int)
        self._seconds: dict[str, float] = defaultdict(float)
        self._images: dict[str, int] = defaultdict(int)

    def emit(self, event: Event) -> None:
        for callback in self.callbacks:
            callback(event)

    def run(self, total_steps: int) -> Finished:
        """Train every member up to ``total_steps`` optimizer steps, or until stopped."""
        session, train = self.session, self.session.config.train
        members = list(session.members.values())
        step = min(m.step for m in members)
        saved_step = step
        reason = "done"
        for member in members:
            member.train(True)
            self.health.start(member, member.step)
        while step < total_steps:
            self.control.wait_while_paused()
            if self.control.should_stop():
                reason = "stopped"
                break
            active = [m for m in members if not self.health.paused(m)]
            if not active:
                reason = "failed"
                break
            for member in active:
                if member.step <= step:  # lock-step: a member ahead (resumed after a pause) waits
                    self._train_member(member, step + 1)
            step += 1
            if step % train.log_every == 0 or step == total_steps:
                self.flush_logs(step)
            if step % train.preview_every == 0:
                self.previews(step)
            if step % train.checkpoint_every == 0 and self.checkpoint(step):
                saved_step = step
        self.flush_logs(step)
        saved = True
        if step != saved_step or session.run.latest_checkpoint() is None:
            saved = self.checkpoint(step, final=True)
        finished = Finished(step, reason, "" if saved else self.save_error or "")
        self.emit(finished)
        return finished

    def _train_member(self, member: Member, step: int) -> None:
        while True:
            started = time.perf_counter()
            try:
                batch = self.session.dataset.batch(self.health.batch_size(member), member.generator)
                losses = member.train_step(batch)
                break
            except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is one
                if not is_out_of_memory(exc):
                    raise
                if not self.health.out_of_memory(member, step, exc):
                    return
        if self.check_each_step and not all(math.isfinite(v.item()) for v in losses.values()):
            bad = ", ".join(k for k, v in losses.items() if not math.isfinite(v.item()))
            self._forget(member.name)
            self.health.diverged(member, step, f"its loss became NaN or Inf ({bad})")
            return
        self._accumulate(member.name, losses, len(batch.images), time.perf_counter() - started)

    def _accumulate(self, name: str, losses: dict[str, torch.Tensor], images: int, seconds: float) -> None:
        sums = self._sums[name]
        for key, value in losses.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        self._counts[name] += 1
        self._seconds[name] += seconds
        self._images[name] += images

    def _forget(self, name: str) -> None:
        for table in (self._sums, self._counts, self._seconds, self._images):
            table.pop(name, None)

    def flush_logs(self, step: int) -> None:
        """Turn accumulated losses into floats (one device sync), check them, log and emit them."""
        session = self.session
        records = []
        for name, sums in list(self._sums.items()):
            count = self._counts[name]
            if not count:
                continue
            losses = {key: float(value) / count for key, value in sums.items()}
            bad = [key for key, value in losses.items() if not math.isfinite(value)]
            if bad:
                self.health.diverged(session.members[name], step,
                                     f"its loss became NaN or Inf ({', '.join(bad)}) before step {step}")
                continue
            rate = self._images[name] / self._seconds[name] if self._seconds[name] > 0 else 0.0
            elapsed = session.elapsed()
            records.append({"time": round(elapsed, 3), "member": name, "step": step, **losses})
            self.emit(StepLogged(name, step, losses, rate, elapsed))
        trained = set(self._sums)
        self._sums.clear()
        self._counts.clear()
        self._seconds.clear()
        self._images.clear()
        self._take_snapshots(step, trained)
        if records:
            self._append(records, step)

    def _take_snapshots(self, step: int, trained: set[str]) -> None:
        for name in trained:
            member = self.session.members[name]
            if self.health.paused(member) or not self.health.snapshot_due(member, step):
                continue
            if not self.health.snapshot(member, step):  # finite losses, yet a NaN gradient got in
                self.health.diverged(member, step, "its weights became NaN or Inf")

    def _append(self, records: list[dict], step: int) -> None:
        try:
            self.session.run.append_metrics(records)
            self._log_failing = False
        except OSError as exc:
            if not self._log_failing:  # once per failing stretch, not at every log point
                self.emit(SaveFailed(step, str(self.session.run.metrics_log),
                                     f"cannot append to the loss log: {exc.strerror or exc}"))
            self._log_failing = True

    def previews(self, step: int) -> None:
        for member in self.session.members.values():
            if not member.can_sample or self.health.paused(member):
                continue
            generator = torch.Generator().manual_seed(PREVIEW_SEED)
            try:
                images = to_nhwc_uint8(member.sample(PREVIEW_COUNT, generator))
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                self.emit(MemberFailed(member.name, step, "out of memory while drawing its preview; skipped"))
                continue
            path = self.session.run.samples / f"{member.name}-step-{step:07d}.png"
            try:
                save_png(path, grid(images, 4))
            except UserError as exc:
                self.emit(SaveFailed(step, str(path), str(exc)))
            self.emit(PreviewReady(member.name, step, images))

    def checkpoint(self, step: int, final: bool = False) -> bool:
        """Save every member (weights checked first); False, with a SaveFailed event, if the disk refused."""
        for member in self.session.members.values():
            if not self.health.paused(member) and not weights_finite(member):
                self._forget(member.name)
                self.health.diverged(member, step, "its weights became NaN or Inf")
        try:
            path = self.session.save_checkpoint(step)
        except CheckpointWriteError as exc:
            self.save_error = str(exc)
            latest = self.session.checkpoint
            kept = f"; the last good checkpoint is {latest.name}" if latest else ""
            then = "" if final else "; training goes on and the next checkpoint tries again"
            self.emit(SaveFailed(step, str(self.session.run.checkpoints), f"{exc}{kept}{then}"))
            return False
        self.save_error = None
        self.emit(CheckpointSaved(step, str(path)))
        return True
