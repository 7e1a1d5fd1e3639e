"""The trainer's child process for the GUI: build a session, train, send every event on a queue.

It sits above the session, beside sampling and evaluation (it builds a Session; the trainer never
imports it). Qt-free on purpose: the GUI's training link (``gui/training_link.py``) spawns
``run_child`` in a fresh interpreter (multiprocessing "spawn"), sets the stop/pause/resume flags,
and turns what arrives on the queue into Qt signals. Everything put on the queue is a small picklable value: the trainer's
events plus the few messages below. The last message is always ``ChildDone``; the GUI reads until
it sees it, so the queue's pipe is drained and the child can exit.
"""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any

from engine.training.control import Control


@dataclass(frozen=True)
class TrainJob:
    """What the child should do: create a run from ``config`` in ``out``, or open ``run``."""

    steps: int
    config: dict[str, Any] | None = None  # a RunConfig as a dict (validated again in the child)
    out: str | None = None
    run: str | None = None
    device: str | None = None             # None: the run's own device setting
    threads: int | None = None            # torch intra-op threads in the child; None: torch's default
    nice: int = 0                         # lower the child's priority so the window stays smooth


@dataclass(frozen=True)
class ChildStarted:
    run: str
    step: int       # the step the run starts (or resumes) from
    total: int
    notes: tuple[str, ...] = ()  # how each member trains (its fast paths), one line each


@dataclass(frozen=True)
class Paused:
    step: int


@dataclass(frozen=True)
class Resumed:
    step: int


@dataclass(frozen=True)
class ChildFailed:
    message: str
    user_error: bool  # True: bad input the user can fix; False: a bug (message ends with a traceback)


@dataclass(frozen=True)
class ChildDone:
    """Always the last message on the queue."""


class ReportingControl(Control):
    """A Control that says on the queue when the trainer actually pauses and resumes, and at which
    ensemble step (the trainer's own: members' step counts cannot tell it when a pace is below 1)."""

    def __init__(self, stop, pause, resume, report):
        super().__init__(stop=stop, pause=pause, resume=resume)
        self._report = report

    def wait_while_paused(self, step: int = 0) -> None:
        if not self.pause.is_set() or self.stop.is_set():
            return
        self._report(Paused(step))
        super().wait_while_paused(step)
        if not self.stop.is_set():
            self._report(Resumed(step))


def run_child(job: TrainJob, queue, stop, pause, resume) -> None:
    """Entry point of the spawned process. Never raises: failures become ``ChildFailed``."""
    try:
        _train(job, queue, stop, pause, resume)
    except BaseException as exc:  # noqa: BLE001 - the GUI must hear about every failure
        queue.put(_failure(exc))
    finally:
        queue.put(ChildDone())


def _train(job: TrainJob, queue, stop, pause, resume) -> None:
    if job.nice and hasattr(os, "nice"):
        try:
            os.nice(job.nice)
        except OSError:
            pass
    # Passive OpenMP waits: spinning workers starve the GUI (and each other) on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    from engine.members.registry import run_config
    from engine.session import Session

    if stop.is_set():  # closed before the child got going: leave nothing behind
        return
    if job.run is not None:
        session = Session.open(job.run, job.device)
    else:
        session = Session.create(run_config(job.config or {}), job.out, job.device)
    queue.put(ChildStarted(str(session.run.path), session.step, job.steps, tuple(session.notes)))
    control = ReportingControl(stop, pause, resume, queue.put)
    session.train(job.steps, callbacks=[queue.put], control=control)


def _failure(exc: BaseException) -> ChildFailed:
    from engine.errors import UserError

    if isinstance(exc, UserError):
        return ChildFailed(str(exc), True)
    if isinstance(exc, MemoryError):
        return ChildFailed("out of memory while training: choose smaller members, batch size or image size",
                           True)
    text = "".join(traceback.format_exception(exc)).strip()
    return ChildFailed(f"the trainer stopped on an unexpected error: {type(exc).__name__}: {exc}\n\n{text}", False)
