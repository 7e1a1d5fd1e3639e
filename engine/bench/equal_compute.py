"""Equal-compute rows for `bench quality --equal-compute` (issue 18; docs/quality.md).

The ensemble trains every member for the same number of steps; at equal *compute* a single member
would get the ensemble's whole training wall-clock instead. Here each generator trains alone, on the
same data and seed, until that wall-clock is spent (a deadline checked every step), and is then
evaluated like the ensemble's rows. The diffusion member alone is also sampled with as many more
Euler steps as the fusion's sampling time buys (its samples/s ÷ the best fusion's), so sampling
compute is equal too.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.evaluation import EvalReport, MetricRow, evaluate
from engine.members.registry import run_config
from engine.metrics.features import JudgeRecipe
from engine.session import Session
from engine.training.control import Control


@dataclass
class Deadline(Control):
    """A control that says stop once ``seconds`` of wall-clock have passed since it was made."""

    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.until = time.perf_counter() + self.seconds

    def should_stop(self) -> bool:
        return super().should_stop() or time.perf_counter() >= self.until


@dataclass(frozen=True)
class AloneRow:
    kind: str
    steps: int
    train_seconds: float
    row: MetricRow
    sample_steps: int | None = None  # set on the equal-sampling-time diffusion row


def solo_config(config, kind: str, steps: int):
    """The run's config with only ``kind`` (its settings as given) and a step cap it will not reach."""
    raw = config.to_dict()
    raw["members"] = [m for m in raw["members"] if m["kind"] == kind]
    raw["train"] = {**raw["train"], "steps": steps, "checkpoint_every": steps, "keep_checkpoints": 1,
                    "preview_every": steps}
    return run_config(raw)


def train_alone(session: Session, kind: str, seconds: float, out: Path) -> tuple[Session, float]:
    """``kind`` trained alone on ``session``'s data for ``seconds`` of wall-clock."""
    cap = 1_000 * max(1, session.step)  # far beyond what the deadline allows
    solo = Session.create(solo_config(session.config, kind, cap), out, str(session.device))
    started = time.perf_counter()
    solo.train(cap, control=Deadline(seconds=seconds))
    return solo, time.perf_counter() - started


def equal_compute_rows(session: Session, report: EvalReport, train_seconds: float, n: int,
                       judge_steps: int, root: Path, max_sample_steps: int,
                       on_row: Callable[[AloneRow], None] = lambda row: None) -> list[AloneRow]:
    """Each generator alone for ``train_seconds``; a diffusion also sampled with the fusion's sampling
    time (its Euler steps scaled by the speed ratio, at most ``max_sample_steps``). ``on_row`` is
    told of each row as soon as it is measured (each takes about ``train_seconds``)."""
    rows: list[AloneRow] = []
    fusion_row = report.best_fusion()[1]
    for kind in session.generators():
        print(f"equal compute: {kind} alone for {train_seconds:.0f} s", file=sys.stderr)
        solo, spent = train_alone(session, kind, train_seconds, root / f"{kind}-alone")
        own = evaluate(solo, n, fusions={}, judge_recipe=JudgeRecipe(steps=judge_steps)).members[kind]
        member = solo.member(kind)
        rows.append(AloneRow(kind, member.step, spent, own))
        on_row(rows[-1])
        if member.can_be_guided and fusion_row.samples_per_s > 0:
            ratio = own.samples_per_s / fusion_row.samples_per_s
            steps = min(max_sample_steps, max(member.p["sample_steps"], round(member.p["sample_steps"] * ratio)))
            member.config = dataclasses.replace(member.config, params={**member.config.params, "sample_steps": steps})
            longer = evaluate(solo, n, fusions={}, judge_recipe=JudgeRecipe(steps=judge_steps))
            rows.append(AloneRow(kind, member.step, spent, longer.members[kind], sample_steps=steps))
            on_row(rows[-1])
    return rows


def best_alone(rows: list[AloneRow]) -> AloneRow:
    return min(rows, key=lambda r: r.row.fd)


def label(row: AloneRow) -> str:
    text = f"{row.kind} alone, {row.steps:,} steps in {row.train_seconds:.0f} s"
    return text + (f", {row.sample_steps} sampling steps" if row.sample_steps else "")
