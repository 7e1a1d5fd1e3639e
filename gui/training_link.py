"""The training link: a QThread that starts the trainer in a spawned child process, reads its event
queue and turns the events into Qt signals (step logs batched to at most ``EMIT_HZ`` a second).
Part of the engine bridge (gui/bridge.py), split out so that each file has one job; a link that does
not stop in time is adopted (gui/threads.py)."""
from __future__ import annotations

import dataclasses

import multiprocessing as mp
import queue as queue_module
import time
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from engine.child import ChildDone, ChildFailed, ChildStarted, Paused, Resumed, TrainJob, run_child
from engine.training.events import CheckpointSaved, Finished, MemberFailed, PreviewReady, StepLogged
try:  # newer engines also say when a save failed
    from engine.training.events import SaveFailed
except ImportError:  # pragma: no cover
    SaveFailed = None

FAST_PATH_CHANGES = ("compile off", "step graph off")  # MemberFailed actions that change how a member trains
EMIT_HZ = 30                 # at most this many batches of step logs per second reach the GUI
IDLE_POLL_S = 0.25           # with nothing pending, check this often that the child is alive
STOP_GRACE_S = 10.0          # a child that ignores stop this long is killed (its last checkpoint stays)

# ---------------------------------------------------------------------------------------------
# the training link: child process ↔ Qt signals

def keep_newest(previews: dict[str, PreviewReady], event: PreviewReady) -> None:
    """Only a member's newest preview is drawn, but a warning of one it replaces is still said."""
    older = previews.get(event.member)
    if older is not None and older.warning and not event.warning:
        event = dataclasses.replace(event, warning=older.warning)
    previews[event.member] = event


class TrainingLink(QThread):
    """Starts the trainer's child process and turns its queue into signals until it ends."""

    sig_started = Signal(str, int, int)
    sig_notes = Signal(str)                 # how each member trains, one line each (after sig_started)
    sig_steps = Signal(object)              # tuple[StepLogged, ...]
    sig_preview = Signal(object)            # PreviewReady: images (n, H, W, C) uint8, ratios, warning
    sig_checkpoint = Signal(int, str)
    sig_paused = Signal(int)
    sig_resumed = Signal(int)
    sig_member_failed = Signal(str, int, str)
    sig_save_failed = Signal(int, str, str)
    sig_finished = Signal(int, str)
    sig_failed = Signal(str, bool)

    def __init__(self, job: TrainJob, parent: QObject | None = None):
        super().__init__(parent)
        ctx = mp.get_context("spawn")
        self.job = job
        self.queue = ctx.Queue()
        self.stop_flag, self.pause_flag, self.resume_flag = ctx.Event(), ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=run_child, name="chorus-trainer", daemon=True,
                                   args=(job, self.queue, self.stop_flag, self.pause_flag, self.resume_flag))
        self._stop_requested_at: float | None = None
        self.started_seen = False         # set by the engine thread when ChildStarted arrives
        self.notes: list[str] = []        # how each member trains, as last sent with sig_notes
        self.ended_before_start = False   # stopped before training began: ended, not failed

    # called from the GUI thread: flags only, never blocking
    def pause(self) -> None:
        self.resume_flag.clear()
        self.pause_flag.set()

    def resume(self) -> None:
        self.pause_flag.clear()
        self.resume_flag.set()

    def stop(self) -> None:
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self.stop_flag.set()
        self.resume_flag.set()
        if not self.started_seen and self.process.pid is not None:
            # Still importing torch or loading data: nothing to save yet, so do not wait for it.
            self.ended_before_start = True
            self.process.terminate()

    def run(self) -> None:
        if self.stop_flag.is_set():  # stopped before it was even started
            return
        try:
            self.process.start()
        except Exception as exc:  # noqa: BLE001 - e.g. no memory to spawn
            self.sig_failed.emit(f"could not start the trainer process: {exc}", False)
            return
        if self.stop_flag.is_set():  # stop() ran while the process was being started
            self.ended_before_start = True
            self.process.terminate()
        try:
            self._pump()
        finally:
            self._reap()

    def _pump(self) -> None:
        steps: list[StepLogged] = []
        previews: dict[str, PreviewReady] = {}
        last_emit = 0.0
        done = False
        while not done:
            pending = bool(steps or previews)
            wait = max(0.0, last_emit + 1.0 / EMIT_HZ - time.monotonic()) if pending else IDLE_POLL_S
            try:
                item = self.queue.get(timeout=wait)
            except queue_module.Empty:
                item = None
            except (EOFError, OSError):
                item = None
            if isinstance(item, StepLogged):
                steps.append(item)
            elif isinstance(item, PreviewReady):
                keep_newest(previews, item)
            elif item is not None:
                last_emit = self._flush(steps, previews)
                done = self._dispatch(item)
            now = time.monotonic()
            if (steps or previews) and now - last_emit >= 1.0 / EMIT_HZ:
                last_emit = self._flush(steps, previews)
            if item is None and not done and not self.process.is_alive():
                done = self._drain_after_exit(steps, previews)
            if not done and self._stop_requested_at is not None \
                    and time.monotonic() - self._stop_requested_at > STOP_GRACE_S:
                self.process.kill()
                self.sig_failed.emit(f"the trainer did not stop within {STOP_GRACE_S:.0f} s and was ended; "
                                     "the last saved checkpoint is kept", True)
                done = True
        self._flush(steps, previews)

    def _drain_after_exit(self, steps, previews) -> bool:
        """The child is gone: read what it left; if it never said goodbye it crashed."""
        while True:
            try:
                item = self.queue.get_nowait()
            except (queue_module.Empty, EOFError, OSError):
                break
            if isinstance(item, StepLogged):
                steps.append(item)
            elif isinstance(item, PreviewReady):
                keep_newest(previews, item)
            else:
                self._flush(steps, previews)
                if self._dispatch(item):
                    return True
        self._flush(steps, previews)
        if self.ended_before_start:
            return True
        code = self.process.exitcode
        self.sig_failed.emit(f"the trainer process ended unexpectedly (exit code {code}); "
                             "the last saved checkpoint is kept — open the run to resume", False)
        return True

    def _flush(self, steps: list, previews: dict) -> float:
        if steps:
            self.sig_steps.emit(tuple(steps))
            steps.clear()
        for event in previews.values():
            self.sig_preview.emit(event)
        previews.clear()
        return time.monotonic()

    def _dispatch(self, item: Any) -> bool:
        """Emit one non-step message; True when it is the child's last."""
        if isinstance(item, ChildStarted):
            self.started_seen = True
            self.sig_started.emit(item.run, item.step, item.total)
            self.notes = list(item.notes)
            self.sig_notes.emit("\n".join(self.notes))
        elif isinstance(item, CheckpointSaved):
            self.sig_checkpoint.emit(item.step, item.path)
        elif isinstance(item, Paused):
            self.sig_paused.emit(item.step)
        elif isinstance(item, Resumed):
            self.sig_resumed.emit(item.step)
        elif isinstance(item, MemberFailed):
            action = getattr(item, "action", "")
            self.sig_member_failed.emit(item.member, item.step,
                                        f"{item.message} ({action})" if action else item.message)
            if action in FAST_PATH_CHANGES:  # the member now trains without it: say so where its paths are
                self.notes.append(f"{item.member}: {action} since step {item.step:,}, eager steps")
                self.sig_notes.emit("\n".join(self.notes))
        elif SaveFailed is not None and isinstance(item, SaveFailed):
            self.sig_save_failed.emit(item.step, item.path, item.message)
        elif isinstance(item, Finished):
            save_error = getattr(item, "save_error", "")
            if save_error:  # the final checkpoint could not be written
                self.sig_save_failed.emit(item.step, "the final checkpoint", save_error)
            self.sig_finished.emit(item.step, item.reason)
        elif isinstance(item, ChildFailed):
            self.sig_failed.emit(item.message, item.user_error)
        elif isinstance(item, ChildDone):
            return True
        return False

    def _reap(self) -> None:
        if self.process.pid is None:  # never started
            self.queue.close()
            self.queue.join_thread()
            return
        self.process.join(timeout=STOP_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=2.0)
        self.queue.close()
        self.queue.join_thread()
        self.process.close()
