"""The trainer: round-robin over members on one device, events to callbacks, stop/pause each step.

The same loop serves the CLI, the tests and the GUI's child process. Losses stay on the device
between log points; one synchronisation per ``log_every`` steps turns them into floats.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable

import torch

from engine.store.images import grid, save_png, to_nhwc_uint8
from engine.training.control import Control
from engine.training.events import CheckpointSaved, Event, Finished, PreviewReady, StepLogged

Callback = Callable[[Event], None]
PREVIEW_COUNT = 16
PREVIEW_SEED = 20241126


class Trainer:
    def __init__(self, session, callbacks: list[Callback] | None = None, control: Control | None = None):
        self.session = session
        self.callbacks = list(callbacks or [])
        self.control = control or Control()
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
        while step < total_steps:
            self.control.wait_while_paused()
            if self.control.should_stop():
                reason = "stopped"
                break
            for member in members:
                started = time.perf_counter()
                batch = session.dataset.batch(member.config.batch_size, member.generator)
                losses = member.train_step(batch)
                self._accumulate(member.name, losses, len(batch.images), time.perf_counter() - started)
            step += 1
            if step % train.log_every == 0 or step == total_steps:
                self.flush_logs(step)
            if step % train.preview_every == 0:
                self.previews(step)
            if step % train.checkpoint_every == 0:
                self.checkpoint(step)
                saved_step = step
        self.flush_logs(step)
        if step != saved_step or session.run.latest_checkpoint() is None:
            self.checkpoint(step)
        finished = Finished(step, reason)
        self.emit(finished)
        return finished

    def _accumulate(self, name: str, losses: dict[str, torch.Tensor], images: int, seconds: float) -> None:
        sums = self._sums[name]
        for key, value in losses.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        self._counts[name] += 1
        self._seconds[name] += seconds
        self._images[name] += images

    def flush_logs(self, step: int) -> None:
        """Turn accumulated losses into floats (one device sync), log and emit them."""
        session = self.session
        records = []
        for name, sums in self._sums.items():
            count = self._counts[name]
            if not count:
                continue
            losses = {key: float(value) / count for key, value in sums.items()}
            rate = self._images[name] / self._seconds[name] if self._seconds[name] > 0 else 0.0
            elapsed = session.elapsed()
            records.append({"time": round(elapsed, 3), "member": name, "step": step, **losses})
            self.emit(StepLogged(name, step, losses, rate, elapsed))
        self._sums.clear()
        self._counts.clear()
        self._seconds.clear()
        self._images.clear()
        if records:
            session.run.append_metrics(records)

    def previews(self, step: int) -> None:
        for member in self.session.members.values():
            if not member.can_sample:
                continue
            generator = torch.Generator().manual_seed(PREVIEW_SEED)
            images = to_nhwc_uint8(member.sample(PREVIEW_COUNT, generator))
            save_png(self.session.run.samples / f"{member.name}-step-{step:07d}.png", grid(images, 4))
            self.emit(PreviewReady(member.name, step, images))

    def checkpoint(self, step: int) -> None:
        path = self.session.save_checkpoint(step)
        self.emit(CheckpointSaved(step, str(path)))
