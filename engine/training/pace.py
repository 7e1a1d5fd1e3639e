"""A member's pace: how many optimizer steps it takes per ensemble step.

The trainer counts ensemble steps (``train.steps``, the checkpoints' and the loss log's step); a
member of pace p has taken ⌊p·s⌋ of its own steps after s of them, so a cheap member that keeps
improving (the DCGAN) can be given more of the run's wall-clock than a slow one, and an equal-pace
run trains every member the same number of steps as before. Paces are exact fractions (at most
``DENOMINATOR`` below the line), so the counts never drift with floating point.
"""
from __future__ import annotations

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
