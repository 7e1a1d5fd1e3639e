"""The Fusion interface: combine members into one batch of images, saying who made each one."""
from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch

from engine.config import Param
from engine.errors import UserError
from engine.members.base import Member
from engine.members.registry import kinds_that

RECENT_FEATURES_BYTES = 1 << 30  # a FusionContext remembers image sets' features up to this size in all
# (features_of): an evaluation's per-class vote pools at 10,000 samples are about 0.7 GiB


@dataclass(frozen=True)
class FusedBatch:
    images: torch.Tensor              # (n, C, H, W) in [-1, 1]
    provenance: tuple[str, ...]       # per image: "dcgan", "average(dcgan,vae)", "refine(vae)"…
    # parameters the strategy settled while fusing (soup's checkpoints as many as the run had, mixture's
    # fitted weights): recorded in a PNG instead of what was asked, so it says what made it
    settled: Mapping[str, Any] = field(default_factory=dict)


class FusionContext:
    """What some strategies need beyond the members; callers fill what they can, lazily.

    ``features``: the picking feature space (images → (n, D) float64), never an evaluation's: an
    untrained CNN of its own seed (engine/metrics/picking.py), so a pick is not graded by the network
    that made it; ``fit_reference``:
    features of held-out *training* images (never the test split) to fit weights against;
    ``checkpoints``: earlier checkpoint folders of the run, oldest first (for weight soups);
    ``class_reference``: class index → features of that class's held-out training images (fitting
    against the class asked for).
    """

    def __init__(self, features: Callable[[torch.Tensor], np.ndarray] | None = None,
                 fit_reference: Callable[[], np.ndarray] | np.ndarray | None = None,
                 checkpoints: list | None = None, fit_samples: int = 2000,
                 class_reference: Callable[[int], np.ndarray] | None = None):
        self.fit_samples = fit_samples  # samples per member when fitting weights
        self._features = features
        self._fit_reference = fit_reference
        self._class_reference = class_reference
        self.checkpoints = checkpoints or []
        self._recent: dict[str, np.ndarray] = {}  # features_of's latest results, by content

    @property
    def has_features(self) -> bool:
        """Both the feature space and the held-out training images to compare with are at hand."""
        return self._features is not None and self._fit_reference is not None

    @property
    def features(self) -> Callable[[torch.Tensor], np.ndarray]:
        if self._features is None:
            raise UserError("this fusion needs the picking features, which are not available here")
        return self._features

    def features_of(self, images: torch.Tensor) -> np.ndarray:
        """``features`` of ``images`` in chunks of 1,000, remembered by content for the latest sets,
        ``RECENT_FEATURES_BYTES`` in all (the newest always): an evaluation's vote rows draw the same
        pools (one per class) from the sample bank, and the picking CNN is the vote's costliest step."""
        key = hashlib.blake2b(images.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).hexdigest()
        if key not in self._recent:
            features = np.concatenate([self.features(part) for part in images.split(1000)])
            while self._recent and sum(f.nbytes for f in self._recent.values()) + features.nbytes > RECENT_FEATURES_BYTES:
                self._recent.pop(next(iter(self._recent)))
            self._recent[key] = features
        return self._recent[key]

    @property
    def fit_reference(self) -> np.ndarray:
        if self._fit_reference is None:
            raise UserError("fitting weights needs held-out training images, which are not available here")
        if callable(self._fit_reference):
            self._fit_reference = self._fit_reference()
        return self._fit_reference

    def reference_for(self, label: int | None) -> np.ndarray:
        """The held-out training features to fit against: those of class ``label`` where known (the
        whole ``fit_reference`` for any class, or when the context has no per-class features)."""
        if label is None or self._class_reference is None:
            return self.fit_reference
        return self._class_reference(label)


class Fusion(ABC):
    """A strategy. A new one is one file in engine/fusion/ and one entry in registry.FUSIONS: the CLI,
    the gallery's controls, the evaluation plan, the self-test and the benchmarks all ask the class."""

    name: ClassVar[str]
    title: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    # label → parameters of the rows `evaluate` measures by default (None: one row, its defaults);
    # "inverse-fd" as weights means 1/FD of each member, filled in by the evaluation
    evaluation_plan: ClassVar[Mapping[str, Mapping[str, Any]] | None] = None
    # parameters for quick checks (self-test, bench speed): small, and needing nothing a run may lack
    quick_params: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        """Why a run with these member kinds cannot use this strategy ("" when it can)."""
        return ""

    @classmethod
    def parameters(cls) -> tuple[Param, ...]:
        """The declared parameters, with member choices filled in from the member registry."""
        return tuple(dataclasses.replace(p, choices=(*(p.choices or ()), *kinds_that(p.member_choice)))
                     if p.member_choice else p for p in cls.params)

    @classmethod
    def plan(cls) -> dict[str, dict[str, Any]]:
        """label → parameters: the rows `evaluate` measures for this strategy by default."""
        plan = cls.evaluation_plan if cls.evaluation_plan is not None else {cls.name: {}}
        return {label: dict(params) for label, params in plan.items()}

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults and range-check user parameters (strings from the CLI are converted)."""
        known = {p.name: p for p in self.parameters()}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            raise UserError(f"fusion {self.name!r} has no parameter {unknown[0]!r} (it takes: {allowed})")
        return {p.name: p.validate(_from_text(raw.get(p.name, p.default), p), f"fusion {self.name}")
                for p in known.values()}

    @abstractmethod
    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        """``n`` fused images; the same generator state (and context) gives the same images.
        ``label``: the class asked for (only the members that learnt classes make images then), None: any."""


def _from_text(value: Any, param: Param) -> Any:
    """CLI values arrive as text: turn 'true' / '3' / '0.5' into the parameter's type."""
    if not isinstance(value, str) or param.per_member or param.choices is not None:
        return value
    if isinstance(param.default, bool):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.lower(), value)
    return value


def seeded_copy(generator: torch.Generator) -> torch.Generator:
    """A generator in the same state: each member sees 'the same seed'."""
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


def generators_of(members: Mapping[str, Member], label: int | None = None) -> dict[str, Member]:
    """The members that make images; with a class asked for (``label``), those that learnt classes."""
    found = {name: m for name, m in members.items() if m.can_sample}
    if not found:
        raise UserError("fusion needs at least one member that can sample images")
    if label is not None:
        found = {name: m for name, m in found.items() if m.conditioned}
        if not found:
            raise UserError("no member of this run learnt classes, so a fusion cannot be asked for one")
    return found


def normalised_weights(weights: Mapping[str, float] | None, names: list[str]) -> dict[str, float]:
    """Weights for ``names`` summing to 1; missing names get 0; None means equal weights."""
    if weights is None:
        return {name: 1.0 / len(names) for name in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise UserError(f"weight for {unknown[0]!r}, which is not a sampling member here ({', '.join(names)})")
    total = sum(weights.get(name, 0.0) for name in names)
    if total <= 0:
        raise UserError("fusion weights must not all be zero")
    return {name: weights.get(name, 0.0) / total for name in names}
