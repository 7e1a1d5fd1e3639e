"""The one place where fusion strategies are registered."""
from __future__ import annotations

from engine.errors import UserError
from engine.fusion.average import Average, WeightedAverage
from engine.fusion.base import Fusion
from engine.fusion.guide import Guide
from engine.fusion.mixture import Mixture
from engine.fusion.refine import Refine
from engine.fusion.soup import Soup
from engine.fusion.vote import Vote

FUSIONS: dict[str, type[Fusion]] = {cls.name: cls for cls in (Average, WeightedAverage, Mixture, Vote, Refine, Guide, Soup)}


def fusion(name: str) -> Fusion:
    try:
        return FUSIONS[name]()
    except KeyError:
        raise UserError(f"unknown fusion {name!r}; choose from {', '.join(FUSIONS)}") from None
