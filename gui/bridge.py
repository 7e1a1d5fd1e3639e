"""The engine thread: the only place where engine calls are made and engine results become Qt signals.

Two kinds of work leave the GUI thread:

* **training** runs in a spawned child process (``engine/child.py``). A ``TrainingLink``
  QThread (gui/training_link.py) starts it, reads its event queue, batches step logs to at most ``EMIT_HZ`` signals a
  second and ends when the child sends ``ChildDone``. Pause / resume / stop are
  ``multiprocessing.Event`` flags the trainer checks every step: setting one never blocks.
* **jobs** (data previews, opening a run, sampling and fusing for the gallery, evaluation) run one
  at a time on a ``JobThread`` in this process. A new job of a kind supersedes the pending one of
  that kind (the gallery only ever needs the latest request; a superseded job's answer, should it
  still come, is dropped), and long jobs poll a cancel flag. What they run, and the payloads they
  hand back, are in gui/jobs.py.

Pages import what they need from here and never from ``engine``.
"""
from __future__ import annotations

import itertools
import os
import queue as queue_module
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.config import COMPILE_MODES, OPTIMIZERS, PRECISIONS, Param  # noqa: F401 - re-exported for the pages
from engine.errors import UserError
from engine.store.images import grid  # imported here, not on the first preview (a 100+ ms stall)
from engine.child import TrainJob
from gui.training_link import STOP_GRACE_S, TrainingLink, _adopt

from gui.jobs import (GALLERY_N, DataPreview, EvalResult, GalleryResult, RunSnapshot, _data_preview, _evaluate,
                      _gallery, _open_run)

__all__ = ["UserError", "Param", "OPTIMIZERS", "PRECISIONS", "COMPILE_MODES", "EngineBridge", "member_specs",
           "fusion_specs", "GALLERY_N", "DataPreview", "EvalResult", "GalleryResult", "RunSnapshot"]


# ---------------------------------------------------------------------------------------------
# catalog and validation: what pages build their controls from

@dataclass(frozen=True)
class MemberSpec:
    kind: str
    title: str
    params: tuple[Param, ...]
    optim: dict[str, Any]
    batch_size: int
    can_sample: bool
    can_score: bool


@dataclass(frozen=True)
class FusionSpec:
    name: str
    title: str
    params: tuple[Param, ...]
    unavailable: Callable[[Sequence[str]], str]  # member kinds → why a run cannot use it ("" if it can)


def member_specs() -> dict[str, MemberSpec]:
    from engine.members.registry import MEMBERS

    specs = {}
    for kind, cls in MEMBERS.items():
        optim = cls.default_optim
        specs[kind] = MemberSpec(kind, cls.title, tuple(cls.params),
                                 {"name": optim.name, "lr": optim.lr, "betas": list(optim.betas),
                                  "momentum": optim.momentum, "weight_decay": optim.weight_decay},
                                 cls.default_batch_size, cls.can_sample, cls.can_score)
    return specs


def fusion_specs() -> dict[str, FusionSpec]:
    from engine.fusion.registry import FUSIONS

    return {name: FusionSpec(name, cls.title, tuple(cls.params), cls.unavailable) for name, cls in FUSIONS.items()}


def validate_data(raw: dict[str, Any]) -> dict[str, Any]:
    from engine.config import DataConfig

    import dataclasses

    return dataclasses.asdict(DataConfig.from_dict(raw))


def validate_member(raw: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The member's settings, normalised; UserError with the reason when a value is refused."""
    from engine.config import DataConfig
    from engine.members.registry import member_config

    return member_config(raw, DataConfig.from_dict(data)).to_dict()


def validate_run(raw: dict[str, Any]) -> dict[str, Any]:
    """A new run's settings, normalised, or UserError (a judge alone is refused: nothing to see)."""
    from engine.members.registry import require_a_generator, run_config

    config = run_config(raw)
    require_a_generator(config)
    return config.to_dict()


def validate_fusion(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    from engine.fusion.registry import fusion

    return fusion(name).validate(raw)


def tile(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    return grid(images, columns)


def export_png(path: str | Path, image: np.ndarray, metadata: dict[str, Any]) -> Path:
    from engine.store.images import save_png

    return save_png(Path(path), image, metadata)


def read_png_metadata(path: str | Path) -> dict[str, Any]:
    from engine.store.images import read_png_metadata as read

    return read(Path(path))


def is_run_folder(path: str | Path) -> bool:
    return (Path(path) / "run.json").is_file()


class JobCancelled(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# the job thread: sampling, fusion, evaluation, data previews, opening runs

class _Job:
    def __init__(self, job_id: int, kind: str, fn: Callable[["JobContext"], Any]):
        self.id, self.kind, self.fn = job_id, kind, fn
        self.cancel = threading.Event()


class JobContext:
    """What a job sees: its cancel flag, a progress reporter and the cached sampling sessions."""

    def __init__(self, thread: "JobThread", job: _Job):
        self._thread, self._job = thread, job

    def should_stop(self) -> bool:
        return self._job.cancel.is_set() or self._thread.stopping.is_set()

    def check(self) -> None:
        if self.should_stop():
            raise JobCancelled()

    def progress(self, label: str, fraction: float) -> None:
        """Report progress; also the point where a cancelled job stops (engine loops call it often)."""
        self.check()
        self._thread.sig_progress.emit(self._job.id, self._job.kind, str(label), float(fraction))

    def session(self, run: str, with_data: bool = False):
        return self._thread.session(run, with_data)


class JobThread(QThread):
    sig_done = Signal(int, str, object)
    sig_failed = Signal(int, str, str)
    sig_cancelled = Signal(int, str)
    sig_progress = Signal(int, str, str, float)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._jobs: queue_module.Queue[_Job | None] = queue_module.Queue()
        self._lock = threading.Lock()
        self._latest: dict[str, _Job] = {}
        self._ids = itertools.count(1)
        self.stopping = threading.Event()
        self._sessions: dict[tuple[str, bool], tuple[str | None, Any]] = {}

    def submit(self, kind: str, fn: Callable[[JobContext], Any]) -> int:
        with self._lock:
            previous = self._latest.get(kind)
            if previous is not None:
                previous.cancel.set()
            job = _Job(next(self._ids), kind, fn)
            self._latest[kind] = job
        self._jobs.put(job)
        if not self.isRunning():
            self.start()
        return job.id

    def is_latest(self, kind: str, job_id: int) -> bool:
        with self._lock:
            job = self._latest.get(kind)
        return job is not None and job.id == job_id

    def cancel(self, kind: str) -> None:
        with self._lock:
            job = self._latest.get(kind)
        if job is not None:
            job.cancel.set()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        self.stopping.set()
        with self._lock:
            for job in self._latest.values():
                job.cancel.set()
        self._jobs.put(None)
        if self.isRunning() and not self.wait(timeout_ms):
            _adopt(self)
            return False
        return True

    def run(self) -> None:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the trainer child has the cores; sampling here stays polite
        try:
            while True:
                job = self._jobs.get()
                if job is None or self.stopping.is_set():
                    return
                if job.cancel.is_set():
                    self.sig_cancelled.emit(job.id, job.kind)
                    continue
                self._run_one(job)
        finally:
            self._sessions.clear()
            torch.set_num_threads(threads)

    def _run_one(self, job: _Job) -> None:
        try:
            result = job.fn(JobContext(self, job))
        except JobCancelled:
            self.sig_cancelled.emit(job.id, job.kind)
        except UserError as exc:
            self.sig_failed.emit(job.id, job.kind, str(exc))
        except MemoryError:
            self.sig_failed.emit(job.id, job.kind, "out of memory: try fewer samples or a smaller image size")
        except Exception as exc:  # noqa: BLE001 - a failed job is a message, never a dead window
            if type(exc).__name__ == "EvaluationCancelled":
                self.sig_cancelled.emit(job.id, job.kind)
                return
            traceback.print_exc(file=sys.stderr)
            self.sig_failed.emit(job.id, job.kind, f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            if job.cancel.is_set():
                self.sig_cancelled.emit(job.id, job.kind)
            else:
                self.sig_done.emit(job.id, job.kind, result)

    def session(self, run: str, with_data: bool = False):
        """A CPU session of ``run`` at its latest checkpoint, reloaded when a newer one appears."""
        from engine.session import Session
        from engine.store.run_folder import RunFolder

        key = (str(Path(run).resolve()), with_data)
        latest = RunFolder.open(Path(run)).latest_checkpoint()
        if latest is None:
            raise UserError(f"run {run} has no checkpoint yet: train it first")
        cached = self._sessions.get(key)
        if cached is not None and cached[0] == str(latest):
            return cached[1]
        for attempt in range(3):  # the trainer may prune the checkpoint we just listed
            try:
                session = Session.open(Path(run), "cpu", checkpoint=latest, with_data=with_data)
                break
            except UserError:
                latest = RunFolder.open(Path(run)).latest_checkpoint()
                if attempt == 2 or latest is None:
                    raise
        self._sessions[key] = (str(latest), session)
        return session


# ---------------------------------------------------------------------------------------------
# the bridge: what the window talks to

def default_child_threads() -> int | None:
    """``CHORUS_TRAIN_THREADS`` if set, else torch's own choice in the child."""
    value = os.environ.get("CHORUS_TRAIN_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class EngineBridge(QObject):
    # training (from the child, through the TrainingLink)
    sig_training_started = Signal(str, int, int)      # run folder, start step, total steps
    sig_training_notes = Signal(str)                  # how each member trains (fast paths), one per line
    sig_steps_logged = Signal(object)                 # tuple[StepLogged, ...] (member, step, losses…)
    sig_preview_ready = Signal(str, int, object)
    sig_checkpoint_saved = Signal(int, str)
    sig_paused = Signal(int)
    sig_resumed = Signal(int)
    sig_member_failed = Signal(str, int, str)
    sig_save_failed = Signal(int, str, str)           # step, path, what went wrong
    sig_training_finished = Signal(int, str)          # step, "done" | "stopped" | "failed"
    sig_training_failed = Signal(str)
    sig_training_ended = Signal()                     # process and engine thread are gone
    # jobs
    sig_data_preview = Signal(object)                 # DataPreview
    sig_data_failed = Signal(str)
    sig_run_opened = Signal(object)                   # RunSnapshot
    sig_run_failed = Signal(str)
    sig_gallery_ready = Signal(object)                # GalleryResult
    sig_gallery_failed = Signal(str)
    sig_eval_progress = Signal(str, float)
    sig_eval_ready = Signal(object)                   # EvalResult
    sig_eval_failed = Signal(str)
    sig_eval_cancelled = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._link: TrainingLink | None = None
        self._retired: TrainingLink | None = None
        self._jobs = JobThread()
        self._jobs.sig_done.connect(self._job_done)
        self._jobs.sig_failed.connect(self._job_failed)
        self._jobs.sig_cancelled.connect(self._job_cancelled)
        self._jobs.sig_progress.connect(self._job_progress)
        self._gallery_cache: dict = {}
        self.paused = False
        self.child_threads = default_child_threads()  # torch threads in the trainer child
        self.child_nice = 0
        self.eval_judge_steps: int | None = None      # None: the engine's evaluation judge recipe

    # -- training --------------------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._link is not None

    @property
    def busy(self) -> bool:
        return self._link is not None or self._jobs.isRunning() and not self._jobs.stopping.is_set()

    def start_training(self, steps: int, config: dict[str, Any] | None = None, out: str | Path | None = None,
                       run: str | Path | None = None, device: str | None = None) -> None:
        if self._link is not None:
            raise UserError("training is already running; stop it first")
        job = TrainJob(steps=int(steps), config=config, out=str(out) if out is not None else None,
                       run=str(run) if run is not None else None, device=device, threads=self.child_threads,
                       nice=self.child_nice)
        link = TrainingLink(job)
        link.sig_started.connect(self.sig_training_started)
        link.sig_notes.connect(self.sig_training_notes)
        link.sig_steps.connect(self.sig_steps_logged)
        link.sig_preview.connect(self.sig_preview_ready)
        link.sig_checkpoint.connect(self.sig_checkpoint_saved)
        link.sig_paused.connect(self.sig_paused)
        link.sig_resumed.connect(self.sig_resumed)
        link.sig_member_failed.connect(self.sig_member_failed)
        link.sig_save_failed.connect(self.sig_save_failed)
        link.sig_finished.connect(self.sig_training_finished)
        link.sig_failed.connect(self._link_failed)
        link.finished.connect(self._link_finished)
        self._link = link
        self.paused = False
        link.start()

    def pause_training(self) -> None:
        if self._link is not None:
            self.paused = True
            self._link.pause()

    def resume_training(self) -> None:
        if self._link is not None:
            self.paused = False
            self._link.resume()

    def stop_training(self) -> None:
        if self._link is not None:
            self._link.stop()

    @Slot(str, bool)
    def _link_failed(self, message: str, _user_error: bool) -> None:
        self.sig_training_failed.emit(message)

    @Slot()
    def _link_finished(self) -> None:
        link, self._link = self._link, None
        if link is None:  # already handled by shutdown()
            return
        link.wait()
        self._retired = link  # deleted with the next one, never inside the slot its signal called
        self.paused = False
        self.sig_training_ended.emit()

    # -- jobs --------------------------------------------------------------------------------------
    def preview_data(self, raw: dict[str, Any], count: int = 48) -> None:
        self._jobs.submit("data", lambda ctx: _data_preview(ctx, dict(raw), count))

    def open_run(self, path: str | Path) -> None:
        self._jobs.submit("open", lambda ctx: _open_run(ctx, str(path)))

    def request_gallery(self, run: str | Path, seed: int, fusion: str, params: dict[str, Any],
                        n: int = GALLERY_N) -> None:
        cache = self._gallery_cache
        self._jobs.submit("gallery", lambda ctx: _gallery(ctx, str(run), int(seed), int(n), fusion, dict(params),
                                                          cache))

    def evaluate(self, run: str | Path, n: int, fusions: dict[str, Any] | None = None, seed: int = 0) -> None:
        steps = self.eval_judge_steps
        self._jobs.submit("eval", lambda ctx: _evaluate(ctx, str(run), int(n), fusions, int(seed), steps))

    def cancel_evaluation(self) -> None:
        self._jobs.cancel("eval")

    _DONE = {"data": "sig_data_preview", "open": "sig_run_opened", "gallery": "sig_gallery_ready",
             "eval": "sig_eval_ready"}
    _FAILED = {"data": "sig_data_failed", "open": "sig_run_failed", "gallery": "sig_gallery_failed",
               "eval": "sig_eval_failed"}

    @Slot(int, str, object)
    def _job_done(self, job_id: int, kind: str, result: object) -> None:
        if self._jobs.is_latest(kind, job_id):  # a superseded job's answer is about older settings
            getattr(self, self._DONE[kind]).emit(result)

    @Slot(int, str, str)
    def _job_failed(self, job_id: int, kind: str, message: str) -> None:
        if self._jobs.is_latest(kind, job_id):  # the newer request of this kind answers instead
            getattr(self, self._FAILED[kind]).emit(message)

    @Slot(int, str)
    def _job_cancelled(self, _job_id: int, kind: str) -> None:
        if kind == "eval":
            self.sig_eval_cancelled.emit()

    @Slot(int, str, str, float)
    def _job_progress(self, _job_id: int, kind: str, label: str, fraction: float) -> None:
        if kind == "eval":
            self.sig_eval_progress.emit(label, fraction)

    # -- the end -----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = STOP_GRACE_S) -> None:
        """Stop training (a checkpoint is saved) and every job; wait for threads and the child."""
        link = self._link
        if link is not None:
            link.stop()
            if not link.wait(int(timeout_s * 1000) + 3000):
                _adopt(link)
            self._link, self.paused = None, False
            self.sig_training_ended.emit()
        self._jobs.shutdown()
