"""The trainer: round-robin over members on one device, events to callbacks, stop/pause each step.

Each ensemble step every member takes its pace's share of optimizer steps (engine/training/pace.py).

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

import dataclasses
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import torch

from engine.accel import GRAPHS
from engine.config import PREVIEW_COUNT, PREVIEW_SEED, RunConfig
from engine.data.dataset import DeviceDataset
from engine.device import is_out_of_memory
from engine.errors import UserError
from engine.members.base import Member
from engine.store.checkpoints import CheckpointWriteError
from engine.store.images import grid, save_png, to_nhwc_uint8
from engine.training.control import Control
from engine.training.events import (CheckpointSaved, Event, Finished, MemberFailed, PreviewReady, SaveFailed,
                                    StepLogged)
from engine.training.health import Health, weights_finite
from engine.training.pace import Schedule
from engine.training.pacer import Pacer
from engine.training.diagnostics import REAL_IMAGES, PreviewCheck
from engine.training.step_graph import StepGraph, StepGraphs

if TYPE_CHECKING:
    from engine.training.distributed import World

Callback = Callable[[Event], None]
FOLD_EVERY = 32  # steps of 0-d loss tensors kept before they are summed on the device
COMPILE_OFF = "compile off"
STEP_GRAPH_OFF = "step graph off"


class RunLog(Protocol):
    """Where the trainer writes (engine/store/run_folder.py's RunFolder)."""

    checkpoints: Path
    metrics_log: Path
    samples: Path

    def append_metrics(self, records: list[dict[str, Any]]) -> None: ...
    def latest_checkpoint(self) -> Path | None: ...


class Trainee(Protocol):
    """What the trainer needs from a session (engine/session.py's Session): it reads these and
    changes none of them; the step-graph cache and the checkpoint are changed through their methods."""

    config: RunConfig
    members: Mapping[str, Member]
    dataset: DeviceDataset
    device: torch.device
    world: "World | None"
    run: RunLog
    checkpoint: Path | None
    step_graphs: StepGraphs
    paces: Mapping[str, Schedule]
    pacer: Pacer | None

    def elapsed(self) -> float: ...
    def save_checkpoint(self, step: int) -> Path: ...
    def set_pace(self, name: str, step: int, pace: float) -> None: ...
    def probe(self, names: list[str]) -> dict[str, float]: ...


class Trainer:
    def __init__(self, session: Trainee, callbacks: list[Callback] | None = None, control: Control | None = None):
        self.session = session
        self.callbacks = list(callbacks or [])
        self.control = control or Control()
        self.world = session.world
        self.is_main = self.world is None or self.world.is_main  # only rank 0 writes and reports
        self.check_each_step = session.device.type == "cpu" and self.world is None
        self.health = Health(list(session.members.values()), self.emit)
        self.save_error: str | None = None      # why the latest checkpoint attempt failed, if it did
        self._log_failing = False
        self._pending: dict[str, list[dict[str, torch.Tensor]]] = defaultdict(list)
        self._sums: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
        self._counts: dict[str, int] = defaultdict(int)
        self._seconds: dict[str, float] = defaultdict(float)
        self._images: dict[str, int] = defaultdict(int)
        self._preview_check: PreviewCheck | None = None

    def emit(self, event: Event) -> None:
        if not self.is_main:
            return
        for callback in self.callbacks:
            callback(event)

    def run(self, total_steps: int) -> Finished:
        """Train every member up to ``total_steps`` ensemble steps (its pace × that many optimizer
        steps), or until stopped."""
        session, train = self.session, self.session.config.train
        members = list(session.members.values())
        step = session.step  # ensemble steps; each member takes its pace's share of optimizer steps
        saved_step = step
        reason = "done"
        for member in members:
            member.train(True)
            self.health.start(member, step)
        while step < total_steps:
            self.control.wait_while_paused(step)
            if self.world is None and self.control.should_stop():
                reason = "stopped"
                break
            active = [m for m in members if not self.health.paused(m)]
            if not active:
                reason = "failed"
                break
            for member in active:  # lock-step: a member ahead (resumed after a pause) waits
                target = session.paces[member.name].quota(step + 1)
                while member.step < target and not self.health.paused(member):
                    before = member.step
                    self._train_member(member, step + 1)
                    if member.step == before:  # nothing trained (a failure handled): the next round tries again
                        break
            step += 1
            session.advance(step)
            if step % train.log_every == 0 or step == total_steps:
                self.flush_logs(step)
                if self.world is not None and self._stop_agreed():  # all ranks stop at the same step
                    reason = "stopped"
                    break
            if session.pacer is not None and step % train.review_every == 0 and step < train.steps:  # not at the end
                self.review_paces(step)
            if step % train.preview_every == 0:
                self.previews(step)
            if step % train.checkpoint_every == 0 and self.checkpoint(step):
                saved_step = step
        self.flush_logs(step)
        saved = True
        if self.is_main and (step != saved_step or session.run.latest_checkpoint() is None):
            saved = self.checkpoint(step, final=True)
        finished = Finished(step, reason, "" if saved else self.save_error or "")
        self.emit(finished)
        return finished

    def _train_member(self, member: Member, step: int) -> None:
        while True:
            started = time.perf_counter()
            graph = self._step_graph(member)
            try:
                images = self.health.batch_size(member)
                if graph is not None:
                    losses = graph.step(images)
                    break
                batch = member.draw_batch(self.session.dataset, images)
                if member.fast.compile and member.fast.compile_mode == GRAPHS:
                    torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs may be reused
                losses = member.train_step(batch)
                break
            except Exception as exc:  # noqa: BLE001 - sorted below; anything else is re-raised
                if is_out_of_memory(exc):
                    if self.world is not None:  # one rank alone cannot change its batch: ranks would desync
                        raise UserError(f"member {member.name!r} ran out of memory at batch size "
                                        f"{self.health.batch_size(member)} on rank {self.world.rank}; "
                                        "start again with a smaller --batch-size") from None
                    if not self.health.out_of_memory(member, step, exc):
                        return
                elif graph is not None:
                    self._step_graph_failed(member, step, exc)
                elif member.fast.compile:
                    self._compile_failed(member, step, exc)
                else:
                    raise
        if self.check_each_step and not all(math.isfinite(v.item()) for v in losses.values()):
            bad = ", ".join(k for k, v in losses.items() if not math.isfinite(v.item()))
            self._forget(member.name)
            self.health.diverged(member, step, f"its loss became NaN or Inf ({bad})")
            return
        seconds = time.perf_counter() - started
        if self.session.pacer is not None:
            self.session.pacer.spend(member.name, seconds)
        self._accumulate(member.name, losses, images, seconds)

    def _step_graph(self, member: Member) -> StepGraph | None:
        """The member's captured step, made on first use and kept by the session across train() calls."""
        return self.session.step_graphs.for_member(member, self.session.dataset)

    def _step_graph_failed(self, member: Member, step: int, exc: BaseException) -> None:
        """The step could not be captured or replayed: go on with eager steps (the same math)."""
        self.session.step_graphs.drop(member)
        member.fast = dataclasses.replace(member.fast, step_graph=False)
        self.emit(MemberFailed(member.name, step, f"its CUDA graph failed ({_root_cause(exc, context=True)}); "
                               "training goes on without it", STEP_GRAPH_OFF))

    def _compile_failed(self, member: Member, step: int, exc: BaseException) -> None:
        """torch.compile could not build or run the member's networks: go on in eager mode."""
        member.set_compile(False)
        self.emit(MemberFailed(member.name, step, f"torch.compile failed ({_root_cause(exc)}); "
                               "training goes on without it", COMPILE_OFF))

    def _accumulate(self, name: str, losses: dict[str, torch.Tensor], images: int, seconds: float) -> None:
        pending = self._pending[name]
        pending.append(losses)
        if len(pending) >= FOLD_EVERY:  # no kernel launch per step; one stack-and-sum per FOLD_EVERY steps
            self._fold(name)
        self._counts[name] += 1
        self._seconds[name] += seconds
        self._images[name] += images

    def _fold(self, name: str) -> None:
        pending = self._pending.pop(name, [])
        if not pending:
            return
        sums = self._sums[name]
        for key in pending[0]:
            total = torch.stack([losses[key] for losses in pending]).sum()
            sums[key] = sums[key] + total if key in sums else total

    def _forget(self, name: str) -> None:
        for table in (self._pending, self._sums, self._counts, self._seconds, self._images):
            table.pop(name, None)

    def flush_logs(self, step: int) -> None:
        """Turn accumulated losses into floats (one device sync), check them, log and emit them."""
        session = self.session
        for name in list(self._pending):
            self._fold(name)
        records = []
        for name, losses in self._mean_losses().items():
            bad = [key for key, value in losses.items() if not math.isfinite(value)]
            if bad:
                self.health.diverged(session.members[name], step,
                                     f"its loss became NaN or Inf ({', '.join(bad)}) before step {step}")
                continue
            rate = self._images[name] / self._seconds[name] if self._seconds[name] > 0 else 0.0
            rate *= self.world.size if self.world is not None else 1
            elapsed = session.elapsed()
            records.append({"time": round(elapsed, 3), "member": name, "step": step, **losses})
            self.emit(StepLogged(name, step, losses, rate, elapsed))
        trained = set(self._sums)
        self._sums.clear()
        self._counts.clear()
        self._seconds.clear()
        self._images.clear()
        self._take_snapshots(step, trained)
        if records and self.is_main:
            self._append(records, step)

    def _mean_losses(self) -> dict[str, dict[str, float]]:
        """Each member's mean losses since the last log point (over all ranks when distributed)."""
        means = {}
        for name in [n for n in self.session.members if n in self._sums]:  # the run's order, on every rank
            count, sums = self._counts[name], self._sums[name]
            if not count:
                continue
            keys = list(sums)
            values = torch.stack([sums[key].float() for key in keys]) / count
            if self.world is not None:
                from engine.training.distributed import mean_over_ranks

                values = mean_over_ranks(values)
            means[name] = dict(zip(keys, values.tolist()))
        return means

    def _stop_agreed(self) -> bool:
        from engine.training.distributed import any_rank

        return any_rank(self.control.should_stop(), self.session.device)

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

    @property
    def _check(self) -> PreviewCheck:
        """The real images' diversity and sharpness, measured at the first preview."""
        if self._preview_check is None:
            real = self.session.dataset.batch(REAL_IMAGES, torch.Generator(device=self.session.device).manual_seed(PREVIEW_SEED))
            self._preview_check = PreviewCheck(real.images)
        return self._preview_check

    def previews(self, step: int) -> None:
        if not self.is_main:
            return
        for member in self.session.members.values():
            if not member.can_sample or self.health.paused(member):
                continue
            generator = torch.Generator().manual_seed(PREVIEW_SEED)  # the same images at every preview
            try:
                drawn = member.sample(PREVIEW_COUNT, generator)
                images = to_nhwc_uint8(drawn)
            except RuntimeError as exc:
                if not is_out_of_memory(exc):
                    raise
                self.emit(MemberFailed(member.name, step, "out of memory while drawing its preview; skipped"))
                continue
            diversity, sharpness = self._check.ratios(drawn)
            warning = self._check.warning(member.name, member.title, diversity, sharpness)
            path = self.session.run.samples / f"{member.name}-step-{step:07d}.png"
            try:
                save_png(path, grid(images, 4))
            except UserError as exc:
                self.emit(SaveFailed(step, str(path), str(exc)))
            self._append([{"member": member.name, "step": step, "diversity": round(diversity, 4),
                                "sharpness": round(sharpness, 4)}], step)
            self.emit(PreviewReady(member.name, step, images, diversity, sharpness, warning))

    def review_paces(self, step: int) -> None:
        """Pace by gain: probe the generators and set their paces from here on (engine/training/pacer.py)."""
        session, pacer = self.session, self.session.pacer
        names = [n for n in pacer.base if not self.health.paused(session.members[n])]
        try:
            distances = session.probe(names)
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            self.emit(MemberFailed(names[0] if names else "", step, "out of memory while probing the generators "
                                   "for pace by gain; the paces stay as they are"))
            return
        paces = pacer.review(distances, {n: session.paces[n].pace for n in names})
        records = []
        for name in names:
            session.set_pace(name, step, paces[name])
            records.append({"member": name, "step": step, "probe": round(distances[name], 4), "pace": paces[name]})
        if self.is_main:
            self._append(records, step)

    def checkpoint(self, step: int, final: bool = False) -> bool:
        """Save every member (weights checked first); False, with a SaveFailed event, if the disk refused."""
        for member in self.session.members.values():
            if not self.health.paused(member) and not weights_finite(member):
                self._forget(member.name)
                self.health.diverged(member, step, "its weights became NaN or Inf")
        if not self.is_main:  # the weights are the same on every rank; rank 0 writes them
            return True
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


def _root_cause(exc: BaseException, context: bool = False) -> str:
    """``Type: first line`` of the innermost error (the compiler's own, not a wrapper's); with
    ``context``, also the error being handled when this one arose (a failed capture's end hides the
    error of the step being captured)."""
    root, seen = exc, {id(exc)}
    while True:
        inner = getattr(root, "inner_exception", None) or root.__cause__ or (root.__context__ if context else None)
        if inner is None or id(inner) in seen:
            break
        root = inner
        seen.add(id(inner))
    first = (str(root).strip().splitlines() or [""])[0][:200]
    return f"{type(root).__name__}: {first}"
