"""Sampling a run's member or fusion into a PNG grid that records how to make it again.

A strategy that needs more than the members (fitted weights, a soup's checkpoints) gets it from the
``FusionContext`` the caller passes: ``engine.evaluation.lazy_context`` where the picking features
(engine/metrics/picking.py) may be needed (the CLI, the window), or the run's checkpoints alone by
default. So sampling and evaluation are siblings that do not import each other (docs/architecture.md, "Layers").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from engine.config import MAX_SAMPLES, SAMPLE_COUNT
from engine.errors import UserError
from engine.store.checkpoints import STEP_DIR
from engine.store.images import grid, read_png_metadata, save_png, to_nhwc_uint8

if TYPE_CHECKING:
    from engine.fusion.base import FusionContext
    from engine.session import Session

ContextFor = Callable[["Session"], "FusionContext"]  # a session → the context its fusions may use


@dataclass(frozen=True)
class SampleRequest:
    run: Path
    member: str | None = None
    fusion: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    n: int = SAMPLE_COUNT
    seed: int = 0
    checkpoint: str | None = None   # a step-NNNNNNN folder name; None = the latest
    label: int | None = None        # the class asked for (an index into the run's class names); None: any

    def __post_init__(self):
        if (self.member is None) == (self.fusion is None):
            raise UserError("choose exactly one of a member or a fusion to sample")
        if not isinstance(self.n, int) or not 1 <= self.n <= MAX_SAMPLES:
            raise UserError(f"--n must be between 1 and {MAX_SAMPLES}, got {self.n}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"--seed must be a non-negative integer, got {self.seed}")
        if self.label is not None and (not isinstance(self.label, int) or isinstance(self.label, bool) or self.label < 0):
            raise UserError(f"the class must be a class index, got {self.label!r}")

    def metadata(self, run_id: str, checkpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        recipe = {"chorus": 1, "run": str(Path(self.run).absolute()), "run_id": run_id, "checkpoint": checkpoint,
                  "member": self.member, "fusion": self.fusion, "params": params, "n": self.n, "seed": self.seed}
        return recipe if self.label is None else {**recipe, "class": self.label}

    @classmethod
    def from_png(cls, path: Path, run: Path | None = None) -> "SampleRequest":
        meta = read_png_metadata(path)
        if meta.get("explore") is not None:
            raise UserError(f"{path} holds explored images (variations or an interpolation), not a plain grid")
        return cls.from_metadata(meta, path, run)

    @classmethod
    def from_metadata(cls, meta: dict[str, Any], path: Path, run: Path | None = None) -> "SampleRequest":
        """The request a recipe (an exported PNG's parameters, read from ``path``) records."""
        try:
            checkpoint = meta.get("checkpoint")
            if checkpoint is not None and not (isinstance(checkpoint, str) and STEP_DIR.match(checkpoint)):
                raise ValueError(f"checkpoint {checkpoint!r} is not a step-NNNNNNN folder name")
            for key in ("member", "fusion"):
                if meta.get(key) is not None and not isinstance(meta[key], str):
                    raise ValueError(f"{key} {meta[key]!r} is not a name")
            if not isinstance(meta.get("n"), int) or not isinstance(meta.get("seed"), int):
                raise ValueError(f"n {meta.get('n')!r} and seed {meta.get('seed')!r} must be integers")
            return cls(run=Path(run or _recorded_run(meta["run"], path)), member=meta.get("member"),
                       fusion=meta.get("fusion"),
                       params=dict(meta.get("params") or {}), n=meta["n"], seed=meta["seed"],
                       checkpoint=checkpoint, label=meta.get("class"))
        except (KeyError, TypeError, ValueError, UserError) as exc:
            reason = str(exc) if isinstance(exc, (UserError, ValueError)) else repr(exc)
            raise UserError(f"the Chorus parameters in {path} are damaged: {reason}") from None


def _recorded_run(recorded: str, png: Path) -> Path:
    """The run a PNG names: absolute since it is recorded so; an older PNG's relative path is tried
    from here, then from the PNG's own folder."""
    run = Path(recorded)
    if run.is_absolute() or run.is_dir():
        return run
    beside = Path(png).parent / run
    return beside if beside.is_dir() else run


def sample_images(session: "Session", request: SampleRequest,
                  context: "FusionContext | None" = None) -> tuple[torch.Tensor, tuple[str, ...], dict[str, Any]]:
    """Images (n, C, H, W) in [-1, 1], their provenance, and the validated parameters.

    ``context``: what a fusion may need beyond the members (default: the run's checkpoints only)."""
    from engine.fusion.base import FusionContext
    from engine.fusion.registry import fusion

    generator = torch.Generator().manual_seed(request.seed)
    if request.label is not None and session.run.num_classes < 2:
        raise UserError(f"run {session.run.path} has no classes (its images had no labels), so --class cannot be used")
    if request.member is not None:
        member = session.member(request.member)
        return member.sample(request.n, generator, label=request.label), (member.name,) * request.n, {}
    strategy = fusion(request.fusion)
    params = strategy.validate(request.params)
    context = context or FusionContext(checkpoints=session.checkpoint_history())
    fused = strategy.fuse(session.members, request.n, generator, context=context, label=request.label, **params)
    return fused.images, fused.provenance, {**params, **fused.settled}


def open_for_sampling(run: Path, checkpoint: str | None, device: str = "cpu") -> "Session":
    """``run`` at ``checkpoint`` (a step-NNNNNNN name; None: the latest), without its data."""
    from engine.session import Session

    if not Path(run).is_dir():
        raise UserError(f"run folder not found: {run}")
    folder = None
    if checkpoint:
        folder = Path(run) / "checkpoints" / checkpoint
        if not folder.is_dir():
            raise UserError(f"checkpoint {checkpoint} no longer exists in {run}")
    session = Session.open(Path(run), device, checkpoint=folder, with_data=False)
    if session.checkpoint is None:
        raise UserError(f"run {run} has no checkpoint yet; train it first")
    return session


def sample_to_png(request: SampleRequest, out: Path, device: str = "cpu", context_for: ContextFor | None = None) -> Path:
    """Sample as ``request`` says and save the grid with its parameters; ``context_for`` makes the
    fusion context from the opened session (see the module's doc)."""
    session = open_for_sampling(Path(request.run), request.checkpoint, device)
    images, _, params = sample_images(session, request, context_for(session) if context_for else None)
    metadata = request.metadata(session.run.run_id, session.checkpoint.name, params)
    return save_png(Path(out), grid(to_nhwc_uint8(images)), metadata)
