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

Pages import the bridge and gui/catalog.py (what controls are built from) and never ``engine``;
widgets import only the catalog.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from engine.child import TrainJob
from engine.errors import UserError
from gui.jobs import (GALLERY_N, DataPreview, EvalResult, ExploreResult, GalleryResult, JobThread, NearestResult,
                      RunSnapshot, data_preview, evaluate_run, explore_interpolation, explore_variations, gallery,
                      nearest_images, open_run)
from gui.threads import adopt
from gui.training_link import STOP_GRACE_S, TrainingLink

__all__ = ["EngineBridge", "GALLERY_N", "DataPreview", "EvalResult", "ExploreResult", "GalleryResult", "NearestResult",
           "RunSnapshot", "TrainingLink"]


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
    sig_preview_ready = Signal(object)                # PreviewReady (images, diversity, sharpness, warning)
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
    sig_data_progress = Signal(str, float)            # reading a folder's pictures
    sig_data_failed = Signal(str)
    sig_run_opened = Signal(object)                   # RunSnapshot
    sig_run_failed = Signal(str)
    sig_gallery_ready = Signal(object)                # GalleryResult
    sig_gallery_failed = Signal(str)
    sig_explore_ready = Signal(object)                # ExploreResult: variations or an interpolation
    sig_explore_failed = Signal(str)
    sig_nearest_ready = Signal(object)                # NearestResult
    sig_nearest_progress = Signal(str, float)         # the evaluation judge and the training features, once
    sig_nearest_failed = Signal(str)
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
        self._nearest_cache: dict = {}   # the run's evaluator, kept between clicks
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
        self._jobs.submit("data", lambda ctx: data_preview(ctx, dict(raw), count))

    def open_run(self, path: str | Path) -> None:
        self._jobs.submit("open", lambda ctx: open_run(ctx, str(path)))

    def request_gallery(self, run: str | Path, seed: int, fusion: str, params: dict[str, Any],
                        n: int = GALLERY_N, label: int | None = None) -> None:
        """``label``: the class asked for (None: any)."""
        cache = self._gallery_cache
        self._jobs.submit("gallery", lambda ctx: gallery(ctx, str(run), int(seed), int(n), fusion, dict(params),
                                                          cache, label))

    def request_variations(self, run: str | Path, recipe: dict[str, Any], n: int, strength: float,
                           seed: int = 0) -> None:
        """``n`` neighbours of the image ``recipe`` names ("More like this")."""
        self._jobs.submit("explore", lambda ctx: explore_variations(ctx, str(run), dict(recipe), int(n),
                                                                    float(strength), int(seed)))

    def request_interpolation(self, run: str | Path, recipe_a: dict[str, Any], recipe_b: dict[str, Any],
                              steps: int) -> None:
        self._jobs.submit("explore", lambda ctx: explore_interpolation(ctx, str(run), dict(recipe_a), dict(recipe_b),
                                                                       int(steps)))

    def request_nearest(self, run: str | Path, label: str, image, k: int) -> None:
        """The ``k`` training images nearest ``image`` ((H, W, C) uint8); the first request of a run
        trains (or loads) the evaluation judge, as the metrics page's evaluation does."""
        cache, steps = self._nearest_cache, self.eval_judge_steps
        self._jobs.submit("nearest", lambda ctx: nearest_images(ctx, str(run), label, image, int(k), steps, cache))

    def evaluate(self, run: str | Path, n: int, fusions: dict[str, Any] | None = None, seed: int = 0) -> None:
        steps = self.eval_judge_steps
        self._jobs.submit("eval", lambda ctx: evaluate_run(ctx, str(run), int(n), fusions, int(seed), steps))

    def cancel_evaluation(self) -> None:
        self._jobs.cancel("eval")

    _DONE = {"data": "sig_data_preview", "open": "sig_run_opened", "gallery": "sig_gallery_ready",
             "eval": "sig_eval_ready", "explore": "sig_explore_ready", "nearest": "sig_nearest_ready"}
    _FAILED = {"data": "sig_data_failed", "open": "sig_run_failed", "gallery": "sig_gallery_failed",
               "eval": "sig_eval_failed", "explore": "sig_explore_failed", "nearest": "sig_nearest_failed"}

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
        elif kind == "data" and self._jobs.is_latest(kind, _job_id):
            self.sig_data_progress.emit(label, fraction)
        elif kind == "nearest" and self._jobs.is_latest(kind, _job_id):
            self.sig_nearest_progress.emit(label, fraction)

    # -- the end -----------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = STOP_GRACE_S) -> None:
        """Stop training (a checkpoint is saved) and every job; wait for threads and the child."""
        link = self._link
        if link is not None:
            link.stop()
            if not link.wait(int(timeout_s * 1000) + 3000):
                adopt(link)
            self._link, self.paused = None, False
            self.sig_training_ended.emit()
        self._jobs.shutdown()
