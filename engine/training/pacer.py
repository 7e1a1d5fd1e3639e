"""Pace by gain: the ensemble's time moves, at each review, to the generator that gains most per second.

A fixed split (engine/training/pace.py) serves one kind of folder: on Fashion-MNIST and colour emoji
the DCGAN keeps improving with its steps, on RGBA emoji it stalls early while the diffusion goes on
gaining (docs/quality.md). With ``train.pacing = "gain"`` the trainer asks, every
``train.review_every`` ensemble steps, for a quality probe of each generator (a distance to the
training images in a fixed feature space, engine/metrics/probe.py) and the seconds each spent
training since the last review, and sets the generators' paces for the next stretch:

- gain = ln(distance then / distance now), rate = gain ÷ seconds spent (0 for a member that got worse);
- relevance = best distance ÷ the member's distance (a member far behind the best adds little to a
  vote, which gates members by distance: engine/fusion/vote.py);
- each generator's target share of the time is ``FLOOR`` plus the rest in proportion to rate ×
  relevance; the new share is halfway between the current one and the target (a noisy probe moves
  time by half at most); the seconds per ensemble step stay what the members' own paces cost,
  so a paced run costs what a fixed one does.

Experimental: measured worse than the fixed paces on both emoji sets (docs/quality.md § Pace by
gain): the cheap VAE gains fastest per second early and draws time, the slow-starting diffusion gets
none. Members that do not generate (the judge) keep their pace. The decision depends on measured seconds,
so two runs can differ in their paces; every decision is logged (metrics.jsonl, ``pace`` records)
and saved with the checkpoint, and a resumed run goes on with exactly the recorded schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from engine.config import PACE_RANGE

FLOOR = 0.1           # the least share of the generators' time any generator keeps (it is still probed)
PACE_STEP = 20        # new paces are multiples of 1/PACE_STEP


@dataclass
class Pacer:
    """The state between reviews: seconds trained and optimizer steps since the run began (for each
    member's cost per step), seconds since the last review, and the last review's distances."""

    base: dict[str, float]                                   # each generator's configured pace
    seconds: dict[str, float] = field(default_factory=dict)  # since the last review
    total_seconds: dict[str, float] = field(default_factory=dict)
    total_steps: dict[str, int] = field(default_factory=dict)
    distances: dict[str, float] = field(default_factory=dict)  # at the last review

    def spend(self, name: str, seconds: float) -> None:
        """One optimizer step of ``name`` took ``seconds``."""
        if name not in self.base:
            return
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.total_seconds[name] = self.total_seconds.get(name, 0.0) + seconds
        self.total_steps[name] = self.total_steps.get(name, 0) + 1

    def review(self, distances: Mapping[str, float], paces: Mapping[str, float]) -> dict[str, float]:
        """New paces for the generators from this review's ``distances`` and their current ``paces``;
        the generators' current paces again when there is nothing to go on (the first review, no
        gain anywhere, a member without a measured cost)."""
        names = [n for n in self.base if n in distances and n in paces]
        previous, spent = self.distances, self.seconds
        self.distances = {n: float(distances[n]) for n in names}
        self.seconds = {}
        unchanged = {n: paces[n] for n in names}
        cost = {n: self.total_seconds.get(n, 0.0) / self.total_steps[n] for n in names if self.total_steps.get(n)}
        if len(names) < 2 or len(cost) < len(names) or any(n not in previous for n in names):
            return unchanged
        if not all(math.isfinite(d) and d > 0 for d in self.distances.values()):
            return unchanged
        best = min(self.distances.values())
        score = {}
        for n in names:
            gain = math.log(previous[n] / self.distances[n]) if previous[n] > 0 else 0.0
            rate = max(gain, 0.0) / spent[n] if spent.get(n, 0.0) > 0 else 0.0
            score[n] = rate * best / self.distances[n]
        total = sum(score.values())
        if total <= 0:
            return unchanged
        budget = sum(self.base[n] * cost[n] for n in names)  # seconds per ensemble step, as configured
        now = {n: paces[n] * cost[n] for n in names}
        now_total = sum(now.values())
        shares = {}
        for n in names:
            target = FLOOR + (1 - FLOOR * len(names)) * score[n] / total
            shares[n] = (now[n] / now_total + target) / 2
        return {n: _rounded(shares[n] * budget / cost[n]) for n in names}

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "total_seconds": self.total_seconds, "total_steps": self.total_steps,
                "distances": self.distances}

    def restore(self, raw: object) -> None:
        """The state a checkpoint recorded (a missing or unreadable one: start afresh)."""
        if not isinstance(raw, Mapping):
            return
        for key, cast in (("seconds", float), ("total_seconds", float), ("total_steps", int), ("distances", float)):
            table = raw.get(key)
            if isinstance(table, Mapping):
                setattr(self, key, {str(k): cast(v) for k, v in table.items() if str(k) in self.base})


def _rounded(pace: float) -> float:
    low, high = PACE_RANGE
    return min(high, max(low, round(pace * PACE_STEP) / PACE_STEP))
