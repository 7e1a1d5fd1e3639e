"""The job thread (data previews, opening a run, sampling and fusing for the gallery, evaluation),
what runs on it, and the small, copied payloads it hands back to the pages (numpy and plain Python,
never torch). The bridge (gui/bridge.py) submits jobs and turns their answers into its signals;
nothing here imports the bridge."""
from __future__ import annotations

import itertools
import json
import queue as queue_module
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from engine.config import PREVIEW_COUNT, PREVIEW_SEED
from engine.errors import UserError
from gui.threads import adopt

GALLERY_N = 16


# ---------------------------------------------------------------------------------------------
# payloads the jobs hand back (small, copied, no torch)

@dataclass(frozen=True)
class DataPreview:
    config: dict[str, Any]
    images: np.ndarray          # (n, H, W, C) uint8: an even spread of the whole set
    count: int                  # training images (the held-out ones are not trained on)
    report: str
    class_names: tuple[str, ...]
    heldout: int = 0            # images set aside as the evaluation's reference
    resolved: dict[str, Any] = field(default_factory=dict)  # size and channels as "auto" chose them


@dataclass(frozen=True)
class RunSnapshot:
    path: str
    run_id: str
    config: dict[str, Any]
    step: int
    checkpoint: str | None
    elapsed: float
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]   # member → loss → (steps, values)
    previews: dict[str, np.ndarray]                                # member → (n, H, W, C) uint8
    evals: list[dict[str, Any]] = field(default_factory=list)      # eval reports, oldest step first
    classes: tuple[str, ...] = ()  # the classes its generators can be asked for (some member learnt them)


@dataclass(frozen=True)
class GalleryResult:
    run: str
    run_id: str
    checkpoint: str
    step: int
    seed: int
    n: int
    fusion: str
    params: dict[str, Any]
    fused: np.ndarray                  # (n, H, W, C) uint8
    provenance: tuple[str, ...]
    members: dict[str, np.ndarray]     # member → (n, H, W, C) uint8, same seed
    label: int | None = None           # the class asked for (None: any)
    classed: tuple[str, ...] = ()      # the members whose grids are of that class (they learnt classes)


@dataclass(frozen=True)
class ExploreResult:
    """Variations or an interpolation strip (engine/explore.py), ready to show and keep."""
    kind: str                          # "variations" | "interpolation"
    run: str
    images: np.ndarray                 # (n, H, W, C) uint8
    recipe: dict[str, Any]             # the whole set's (what a grid or strip PNG carries)
    recipes: list[dict[str, Any]]      # each image's own (what its single PNG carries)
    member: str                        # who made them
    note: str = ""                     # e.g. which member varies a blend's image


@dataclass(frozen=True)
class NeighbourView:
    name: str
    distance: float
    image: np.ndarray                  # (H, W, C) uint8


@dataclass(frozen=True)
class NearestResult:
    """The training images nearest one generated image, in the evaluation's feature space."""
    label: str                         # which image was asked about
    image: np.ndarray                  # (H, W, C) uint8, the generated one
    neighbours: tuple[NeighbourView, ...]
    likely_copy: bool | None           # None: no held-out images, so no threshold
    threshold: float | None
    why_no_flag: str


@dataclass(frozen=True)
class EvalResult:
    run: str
    report: dict[str, Any]             # EvalReport.to_json()
    path: str                          # where it was saved in the run folder


# ---------------------------------------------------------------------------------------------
# the job thread: one job at a time, the latest of each kind

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
            adopt(self)
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
# job bodies (run on the JobThread)

def data_preview(ctx: JobContext, raw: dict[str, Any], count: int) -> DataPreview:
    from engine.config import DataConfig
    from engine.data.sources import load_data

    import dataclasses

    config = DataConfig.from_dict(raw)
    data = load_data(config, progress=lambda done, total: ctx.progress("reading pictures", done / max(total, 1)))
    ctx.check()
    picks = np.linspace(0, len(data.images) - 1, min(count, len(data.images))).astype(int)
    heldout = 0 if data.heldout is None else len(data.heldout)
    resolved = dataclasses.asdict(data.config or config)
    return DataPreview(dataclasses.asdict(config), np.ascontiguousarray(data.images[picks]), len(data.images),
                       data.report, tuple(data.class_names), heldout, resolved)


def open_run(ctx: JobContext, path: str) -> RunSnapshot:
    from engine.store.run_folder import RunFolder

    run = RunFolder.open(Path(path))
    curves = _curves(run.read_metrics())
    ctx.check()
    latest = run.latest_checkpoint()
    previews: dict[str, np.ndarray] = {}
    step, elapsed = 0, 0.0
    if latest is not None:
        session = ctx.session(path)
        step, elapsed = session.step, session.elapsed()
        previews = _previews(session)
    return RunSnapshot(str(run.path), run.run_id, run.config.to_dict(), step,
                       latest.name if latest is not None else None, elapsed, curves, previews, run.read_eval_reports(),
                       _classes(run))


def _classes(run) -> tuple[str, ...]:
    """The run's class names when one of its members learnt classes (indices if the names were not kept)."""
    learnt = any(member.params.get("classes") == "on" for member in run.config.members)
    if not learnt or run.num_classes < 2:
        return ()
    return run.class_names or tuple(str(k) for k in range(run.num_classes))


def _curves(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    table: dict[str, dict[str, tuple[list, list]]] = {}
    for record in records:
        member, step = record.get("member"), record.get("step")
        if not isinstance(member, str) or not isinstance(step, int) or "pace" in record:
            continue  # a pace review's record (engine/training/pacer.py) holds no losses
        for key, value in record.items():
            if key in ("member", "step", "time") or not isinstance(value, (int, float)):
                continue
            steps, values = table.setdefault(member, {}).setdefault(key, ([], []))
            steps.append(step)
            values.append(float(value))
    return {member: {key: (np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64))
                     for key, (s, v) in losses.items()} for member, losses in table.items()}


def _previews(session) -> dict[str, np.ndarray]:
    import torch

    from engine.store.images import to_nhwc_uint8

    return {name: to_nhwc_uint8(member.sample(PREVIEW_COUNT, torch.Generator().manual_seed(PREVIEW_SEED)))
            for name, member in session.generators().items()}


def gallery(ctx: JobContext, run: str, seed: int, n: int, fusion: str, params: dict[str, Any],
            cache: dict, label: int | None = None) -> GalleryResult:
    import torch

    from engine.evaluation import lazy_context
    from engine.sampling import SampleRequest, sample_images
    from engine.store.images import to_nhwc_uint8

    session = ctx.session(run)
    key = (str(session.checkpoint), seed, n, label)
    # a member that learnt classes shows the class asked for; one that did not, any
    classed = tuple(name for name, m in session.generators().items() if label is not None and m.conditioned)
    members = cache.get(key)
    if members is None:  # member grids only change with the checkpoint, the seed or the class
        members = {}
        for name, member in session.generators().items():
            ctx.check()
            asked = label if name in classed else None
            members[name] = to_nhwc_uint8(member.sample(n, torch.Generator().manual_seed(seed), label=asked))
        cache.clear()
        cache[key] = members
    ctx.check()
    request = SampleRequest(run=Path(run), fusion=fusion, params=dict(params), n=n, seed=seed, label=label)
    images, provenance, used = sample_images(session, request, lazy_context(session))
    return GalleryResult(run, session.run.run_id, session.checkpoint.name, session.step, seed, n, fusion,
                         _jsonable(used), to_nhwc_uint8(images), tuple(provenance), dict(members), label, classed)


def explore_variations(ctx: JobContext, run: str, recipe: dict[str, Any], n: int, strength: float,
                       seed: int) -> ExploreResult:
    from engine import explore
    from engine.evaluation import lazy_context

    session = ctx.session(run)
    context = lazy_context(session)
    source = explore.source_of(session, recipe, context)
    ctx.check()
    made = explore.variations(session, source, n, strength, seed, context)
    return _explored("variations", run, made, source.note)


def explore_interpolation(ctx: JobContext, run: str, recipe_a: dict[str, Any], recipe_b: dict[str, Any],
                          steps: int) -> ExploreResult:
    from engine import explore
    from engine.evaluation import lazy_context

    session = ctx.session(run)
    context = lazy_context(session)
    a = explore.source_of(session, recipe_a, context)
    ctx.check()
    b = explore.source_of(session, recipe_b, context)
    ctx.check()
    return _explored("interpolation", run, explore.interpolation(session, a, b, steps))


def _explored(kind: str, run: str, made, note: str = "") -> ExploreResult:
    from engine.store.images import to_nhwc_uint8

    return ExploreResult(kind, run, to_nhwc_uint8(made.images), _jsonable(made.recipe), _jsonable(made.singles()),
                         made.makers[0], note)


def nearest_images(ctx: JobContext, run: str, label: str, image: np.ndarray, k: int, judge_steps: int | None,
                   cache: dict) -> NearestResult:
    """The k training images nearest ``image``; the run's evaluator (its judge, the training
    features) is kept in ``cache`` for the next click."""
    import torch

    from engine import explore
    from engine.data.dataset import to_signed_float
    from engine.metrics.features import JudgeRecipe

    session = ctx.session(run, with_data=True)
    key = (str(Path(run).resolve()), judge_steps)
    evaluator = cache.get(key)
    if evaluator is None:
        from engine.evaluation import Evaluator

        recipe = JudgeRecipe(steps=judge_steps) if judge_steps else JudgeRecipe()
        evaluator = Evaluator(session.data, session.config.data, session.device, judge_recipe=recipe,
                              progress=ctx.progress)
        ctx.progress("training features", 0.0)
        evaluator.train_features()
        cache.clear()
        cache[key] = evaluator
    ctx.check()
    tensor = to_signed_float(torch.from_numpy(np.ascontiguousarray(image[None])).permute(0, 3, 1, 2))
    found = explore.nearest_training(evaluator, tensor, k)
    views = tuple(NeighbourView(n.name, n.distance, np.ascontiguousarray(n.image)) for n in found.neighbours[0])
    return NearestResult(label, np.ascontiguousarray(image), views,
                         None if found.likely_copy is None else found.likely_copy[0], found.threshold, found.why_no_flag)


def evaluate_run(ctx: JobContext, run: str, n: int, fusions: dict[str, Any] | None, seed: int,
              judge_steps: int | None) -> EvalResult:
    try:
        from engine.evaluation import evaluate
    except ImportError:
        raise UserError("evaluation is not available in this version of Chorus") from None
    from engine.store.run_folder import RunFolder

    options: dict[str, Any] = {}
    if judge_steps:
        from engine.metrics.features import JudgeRecipe

        options["judge_recipe"] = JudgeRecipe(steps=judge_steps)
    session = ctx.session(run, with_data=True)
    report = evaluate(session, n, fusions=fusions, seed=seed, progress=ctx.progress, should_stop=ctx.should_stop,
                      **options)
    document = report.to_json()
    path = RunFolder.open(Path(run)).write_eval_report(document)  # as the CLI saves it: atomically
    return EvalResult(run, json.loads(json.dumps(document, default=_json_default)), str(path))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))
