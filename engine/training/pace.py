"""A member's pace: how many optimizer steps it takes per ensemble step.

The trainer counts ensemble steps (``train.steps``, the checkpoints' and the loss log's step); a
member of pace p has taken ⌊p·s⌋ of its own steps after s of them, so a cheap member that keeps
improving (the DCGAN) can be given more of the run's wall-clock than a slow one, and an equal-pace
run trains every member the same number of steps as before. Paces are exact fractions (at most
``DENOMINATOR`` below the line), so the counts never drift with floating point.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

DENOMINATOR = 1000


def _fraction(pace: float) -> Fraction:
    return Fraction(pace).limit_denominator(DENOMINATOR)


def quota(pace: float, rounds: int) -> int:
    """The optimizer steps a member of ``pace`` has taken after ``rounds`` ensemble steps."""
    p = _fraction(pace)
    return rounds * p.numerator // p.denominator


def rounds_done(pace: float, steps: int) -> int:
    """The ensemble steps a member of ``pace`` has completed with ``steps`` optimizer steps: the most
    rounds whose quota is at most ``steps``; none before its first step (a new run is at step 0, even
    when every member's pace is below 1 and its first round asks no step of it)."""
    if steps == 0:
        return 0
    p = _fraction(pace)
    return ((steps + 1) * p.denominator - 1) // p.numerator


@dataclass(frozen=True)
class Schedule:
    """A member's paces over the run: ``segments`` are (first ensemble step, pace) pairs, the first at
    step 0. A fixed pace is one segment; paced by gain (engine/training/pacer.py), a review adds one."""

    segments: tuple[tuple[int, float], ...]

    @classmethod
    def fixed(cls, pace: float) -> "Schedule":
        return cls(((0, pace),))

    @property
    def pace(self) -> float:
        """The pace now (of the last segment)."""
        return self.segments[-1][1]

    def from_step(self, step: int, pace: float) -> "Schedule":
        """This schedule with ``pace`` from ensemble step ``step`` on (segments after it dropped)."""
        kept = tuple(s for s in self.segments if s[0] < step)
        if kept and kept[-1][1] == pace:
            return Schedule(kept)
        return Schedule(kept + ((step, pace),))

    def quota(self, rounds: int) -> int:
        """The optimizer steps taken after ``rounds`` ensemble steps: each segment's own quota."""
        total = 0
        for i, (start, pace) in enumerate(self.segments):
            end = self.segments[i + 1][0] if i + 1 < len(self.segments) else None
            if rounds <= start:
                break
            total += quota(pace, (rounds if end is None else min(rounds, end)) - start)
        return total

    def rounds_done(self, steps: int) -> int:
        """The most ensemble steps whose quota is at most ``steps`` (0 before the first step)."""
        if len(self.segments) == 1:
            return rounds_done(self.segments[0][1], steps)
        if steps == 0:
            return 0
        low, high = 0, self.segments[-1][0] + rounds_done(self.segments[-1][1], steps) + 1
        while self.quota(high) <= steps:  # the last segment's pace bounds it; widen if a rounding says no
            high *= 2
        while high - low > 1:  # quota(low) <= steps < quota(high)
            middle = (low + high) // 2
            if self.quota(middle) <= steps:
                low = middle
            else:
                high = middle
        return low

    def to_json(self) -> list[list[float]]:
        return [[start, pace] for start, pace in self.segments]

    @classmethod
    def from_json(cls, raw: object, fallback: float) -> "Schedule":
        """A schedule a checkpoint recorded; the fixed ``fallback`` pace when there is none."""
        try:
            segments = tuple((int(start), float(pace)) for start, pace in raw)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            return cls.fixed(fallback)
        if not segments or segments[0][0] != 0 or any(p <= 0 for _, p in segments):
            return cls.fixed(fallback)
        return cls(segments)
