"""What runs on the bridge's JobThread (data previews, opening a run, the gallery, evaluation) and
the small, copied payloads it hands back to the pages (numpy and plain Python, never torch)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import UserError

if TYPE_CHECKING:
    from gui.bridge import JobContext

GALLERY_N = 16
PREVIEW_SEED = 20241126      # the trainer's fixed preview seed (engine/training/trainer.py)
PREVIEW_COUNT = 16


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


@dataclass(frozen=True)
class EvalResult:
    run: str
    report: dict[str, Any]             # EvalReport.to_json()
    path: str                          # where it was saved in the run folder


# ---------------------------------------------------------------------------------------------
# job bodies (run on the JobThread)

def _data_preview(ctx: JobContext, raw: dict[str, Any], count: int) -> DataPreview:
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


def _open_run(ctx: JobContext, path: str) -> RunSnapshot:
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
                       latest.name if latest is not None else None, elapsed, curves, previews, _eval_history(run.path))


def _curves(records: list[dict[str, Any]]) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    table: dict[str, dict[str, tuple[list, list]]] = {}
    for record in records:
        member, step = record.get("member"), record.get("step")
        if not isinstance(member, str) or not isinstance(step, int):
            continue
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


def _eval_history(run: Path) -> list[dict[str, Any]]:
    reports = []
    for file in sorted((Path(run) / "eval").glob("*.json")):
        try:
            report = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(report, dict) and isinstance(report.get("members"), dict):
            reports.append(report)
    return sorted(reports, key=lambda r: r.get("step", 0) if isinstance(r.get("step"), int) else 0)


def _gallery(ctx: JobContext, run: str, seed: int, n: int, fusion: str, params: dict[str, Any],
             cache: dict) -> GalleryResult:
    import torch

    from engine.sampling import SampleRequest, sample_images
    from engine.store.images import to_nhwc_uint8

    session = ctx.session(run)
    key = (str(session.checkpoint), seed, n)
    members = cache.get(key)
    if members is None:  # member grids only change with the checkpoint or the seed
        members = {}
        for name, member in session.generators().items():
            ctx.check()
            members[name] = to_nhwc_uint8(member.sample(n, torch.Generator().manual_seed(seed)))
        cache.clear()
        cache[key] = members
    ctx.check()
    request = SampleRequest(run=Path(run), fusion=fusion, params=dict(params), n=n, seed=seed)
    images, provenance, used = sample_images(session, request)
    return GalleryResult(run, session.run.run_id, session.checkpoint.name, session.step, seed, n, fusion,
                         _jsonable(used), to_nhwc_uint8(images), tuple(provenance), dict(members))


def _evaluate(ctx: JobContext, run: str, n: int, fusions: dict[str, Any] | None, seed: int,
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
    folder = RunFolder.open(Path(run)).path / "eval"
    path = folder / f"step-{report.step:07d}-n{n}.json"  # the CLI's name too
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".json.tmp")
        temp.write_text(json.dumps(document, indent=1, default=_json_default), encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return EvalResult(run, json.loads(json.dumps(document, default=_json_default)), str(path))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_json_default))
