"""Evaluate a run: every member and every fusion against reference images, in one feature space.

FD, KID (± its spread over subsets), precision / recall / density / coverage (k = 5), FD divided
by the floor (FD of as many real training images against the same reference), memorisation (the
share of likely copies of training images: engine/metrics/memorisation.py) and samples per second.
The reference is never trained on: Fashion-MNIST's test split, or a folder's held-out images.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from engine.config import MIN_EVAL_SAMPLES
from engine.data.sources import FASHION_MNIST, LoadedData, load_data
from engine.errors import UserError
from engine.fusion.bank import SampleBank
from engine.fusion.base import FusionContext
from engine.fusion.registry import FUSIONS, fusion as make_fusion
from engine.metrics.features import (FeatureCache, InceptionFeatures, JudgeFeatures, JudgeRecipe, RandomFeatures,
                                     cache_dir, judge_key, reference_images, reference_judge)
from engine.metrics.frechet import frechet_distance
from engine.metrics.kid import kernel_inception_distance
from engine.metrics.memorisation import CopyTest, copy_test
from engine.metrics.picking import PickingSpace
from engine.metrics.prdc import prdc

Progress = Callable[[str, float], None]


class EvaluationCancelled(Exception):
    """The caller's should_stop() said stop; nothing was written."""


@dataclass(frozen=True)
class MetricRow:
    fd: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    density: float
    coverage: float
    fd_ratio: float
    samples_per_s: float
    memorisation: float | None = None  # share of likely copies; None without held-out images


@dataclass(frozen=True)
class PerClass:
    """FD per class: each member that learnt classes and each fusion, asked for one class at a time,
    against the reference images of that class (``reference`` of them, ``n`` samples each)."""

    classes: list[str]                  # the run's class names
    n: dict[str, int]                   # class → samples per row
    reference: dict[str, int]           # class → reference images
    fd: dict[str, dict[str, float]]     # row (member or fusion label) → class → FD
    skipped: dict[str, str] = field(default_factory=dict)  # a row or class left out, and why
    # row → class → share of its images the evaluation judge classifies as the class asked for, and
    # the same share for the reference images ("reference"); empty in a feature space without classes
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalReport:
    members: dict[str, MetricRow]
    fusions: dict[str, MetricRow]
    floor_fd: float
    n: int
    step: int
    features: str = "judge"
    reference: str = ""
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    memorisation: dict[str, Any] = field(default_factory=dict)  # the test used, or why there is none
    per_class: PerClass | None = None  # ``evaluate(per_class=True)``

    def to_json(self) -> dict[str, Any]:
        rows = lambda table: {name: dataclasses.asdict(row) for name, row in table.items()}  # noqa: E731
        document = {"members": rows(self.members), "fusions": rows(self.fusions), "floor": {"fd": self.floor_fd},
                    "n": self.n, "step": self.step, "features": self.features, "reference": self.reference,
                    "params": self.params, "skipped": self.skipped, "memorisation": self.memorisation}
        return document if self.per_class is None else {**document, "per_class": dataclasses.asdict(self.per_class)}

    def best_member(self) -> tuple[str, MetricRow]:
        return min(self.members.items(), key=lambda item: item[1].fd)

    def best_fusion(self) -> tuple[str, MetricRow]:
        return min(self.fusions.items(), key=lambda item: item[1].fd)


def default_fusions() -> dict[str, tuple[str, dict[str, Any]]]:
    """label → (strategy, params): each registered strategy's own evaluation plan (``Fusion.plan``).
    Weights "inverse-fd" are filled in with 1/FD of each member once the members are measured."""
    return {label: (name, params) for name, cls in FUSIONS.items() for label, params in cls.plan().items()}


def fusion_plan(text: str | None) -> dict | None:
    """``--fusions a,b``: those rows of the evaluation plan (a strategy's name for one not in it);
    None (every row) without the option."""
    if not text:
        return None
    known = default_fusions()
    return {label: known.get(label, (label, {})) for label in (f.strip() for f in text.split(",") if f.strip())}


class Evaluator:
    """Holds the feature space and reference features so repeated evaluations reuse them."""

    def __init__(self, data: LoadedData, data_config, device: torch.device, features: str = "judge",
                 inception_weights: Path | None = None, judge_recipe: JudgeRecipe = JudgeRecipe(),
                 progress: Progress | None = None):
        self.device = device
        self.progress = progress or (lambda label, fraction: None)
        if features == "inception":
            if inception_weights is None:
                raise UserError("--features inception needs --inception-weights PATH (a local file; "
                                "Chorus never downloads weights)")
            extractor = InceptionFeatures(inception_weights, device)
        elif features == "random":
            extractor = RandomFeatures(device)
        elif features == "judge":
            judge = reference_judge(data, device, judge_recipe, progress=lambda f: self.progress("judge", f))
            extractor = JudgeFeatures(judge, judge_key(data, judge_recipe))
        else:
            raise UserError(f"unknown feature space {features!r}; use judge, random or inception")
        self.extract = extractor
        self.cache = FeatureCache(extractor, cache_dir() / "features")
        ref_images, self.reference_labels, ref_key, self.reference_name = reference_images(data_config, data)
        self.reference = self.cache.of_uint8(ref_key, ref_images, device)
        self.data = data
        self.data_config = data_config
        self._copies: CopyTest | None = None

    @property
    def held_out(self) -> bool:
        """The reference was never trained on (Fashion-MNIST's test split, a folder's held-out share)."""
        return self.data_config.source == FASHION_MNIST or self.data.heldout is not None

    def floor(self, n: int) -> float:
        """FD of n real training images (a seeded shuffled draw) against the reference: what a generator
        as good as the data itself would score with as many samples. Without held-out images, two
        disjoint shuffled halves of the training images."""
        order = np.random.default_rng(1).permutation(len(self.data.images))
        if self.held_out:
            picks = np.sort(order[:n])
            real = self.cache.of_uint8(f"{self.data.fingerprint}-floor{n}", self.data.images[picks], self.device)
            return frechet_distance(real, self.reference)
        half = len(order) // 2
        first, second = (self.cache.of_uint8(f"{self.data.fingerprint}-half{i}", self.data.images[np.sort(part)],
                                             self.device) for i, part in enumerate((order[:half], order[half:2 * half])))
        return frechet_distance(first, second)

    def copies(self) -> CopyTest | None:
        """The memorisation test (engine/metrics/memorisation.py), once; None without held-out images."""
        if not self.held_out:
            return None
        if self._copies is None:
            self._copies = copy_test(self.train_features(), self.reference)
        return self._copies

    def train_features(self) -> np.ndarray:
        """Features of every training image, in ``data.images`` order (cached per data set)."""
        return self.cache.of_uint8(f"{self.data.fingerprint}-train", self.data.images, self.device)

    def prdc_reference(self, n: int) -> np.ndarray:
        """As many reference features as there are samples (a fixed, seeded draw, the same for every
        row): PRDC's k-nearest-neighbour balls shrink as a set grows, so a reference larger than the
        samples would make recall and coverage small whatever the generator (Naeem et al. 2020 use
        equal sizes). FD and KID use the whole reference."""
        if n >= len(self.reference):
            return self.reference
        picks = np.sort(np.random.default_rng(3).permutation(len(self.reference))[:n])
        return self.reference[picks]

    def row(self, images: torch.Tensor, samples_per_s: float, floor: float) -> MetricRow:
        fake = _features_of(self, images)
        fd = frechet_distance(fake, self.reference)
        kid = kernel_inception_distance(self.reference, fake, subsets=100, subset_size=min(1000, len(fake)))
        scores = prdc(self.prdc_reference(len(fake)), fake, k=5)
        copies = self.copies()
        return MetricRow(fd=fd, kid=kid.mean, kid_std=kid.std, precision=scores["precision"],
                         recall=scores["recall"], density=scores["density"], coverage=scores["coverage"],
                         fd_ratio=fd / floor if floor > 0 else float("inf"),
                         samples_per_s=samples_per_s, memorisation=copies.rate(fake) if copies else None)


def evaluate(session, n: int, fusions: dict[str, Any] | None = None, seed: int = 0,
             progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
             features: str = "judge", inception_weights: Path | None = None,
             evaluator: Evaluator | None = None, judge_recipe: JudgeRecipe = JudgeRecipe(),
             fit_samples: int = 2000, per_class: bool = False) -> EvalReport:
    """Measure every sampling member and each fusion (default: all of them) on ``n`` samples;
    ``per_class``: also FD per class (``PerClass``), asking each for one class at a time."""
    if n < MIN_EVAL_SAMPLES:
        raise UserError(f"--n must be at least {MIN_EVAL_SAMPLES} to estimate covariances, got {n}")
    progress = progress or (lambda label, fraction: None)
    should_stop = should_stop or (lambda: False)
    data = session.data or load_data(session.config.data)
    evaluator = evaluator or Evaluator(data, session.config.data, session.device, features, inception_weights,
                                       judge_recipe, progress)
    floor = evaluator.floor(n)
    plan = default_fusions() if fusions is None else {k: _as_plan(k, v) for k, v in fusions.items()}
    with SampleBank().attached(session.members) as bank:
        timed = lambda make: _rate(make, n, seed, bank)  # noqa: E731
        members = _measure_members(session, n, plan, seed, evaluator, floor, progress, should_stop, timed)
        picking = PickingSpace(data, session.device)  # fusions pick apart from the evaluation's space
        context = FusionContext(features=picking.extract, fit_reference=picking.fit_reference,
                                checkpoints=session.checkpoint_history(), fit_samples=fit_samples,
                                class_reference=picking.class_reference)
        rows, used, skipped = _measure_fusions(session, n, plan, seed, evaluator, floor, members, context,
                                               progress, should_stop, timed)
        classes = _per_class(session, n, seed, evaluator, used, context, progress, should_stop) if per_class else None
    progress("done", 1.0)
    copies = evaluator.copies()
    memorisation = copies.describe() if copies else {"test": None, "why": "no held-out images: " + evaluator.reference_name}
    return EvalReport(members, rows, floor, n, session.step, evaluator.extract.name, evaluator.reference_name,
                      used, skipped, memorisation, classes)


def _measure_members(session, n, plan, seed, evaluator, floor, progress, should_stop, timed) -> dict[str, MetricRow]:
    generators = session.generators()
    largest_k = max([int(p.get("k", 1)) for name, p in plan.values() if name == "vote"] or [1])
    bank_size = max(n, -(-largest_k * n // max(1, len(generators))))
    members: dict[str, MetricRow] = {}
    for index, (name, member) in enumerate(generators.items()):
        _check(should_stop)
        progress(name, index / (len(generators) + len(plan)))
        member.sample(bank_size, torch.Generator().manual_seed(seed))  # the pool vote will need, once
        images = member.sample(n, torch.Generator().manual_seed(seed))
        members[name] = evaluator.row(images, timed(member.sample), floor)
    return members


def _measure_fusions(session, n, plan, seed, evaluator, floor, members, context, progress, should_stop, timed):
    rows, used, skipped = {}, {}, {}
    done = len(members)
    for index, (label, (name, params)) in enumerate(plan.items()):
        _check(should_stop)
        progress(label, (done + index) / (done + len(plan)))
        if params.get("weights") == "inverse-fd":
            params = {**params, "weights": {m: 1.0 / max(row.fd, 1e-9) for m, row in members.items()}}
        strategy = make_fusion(name)
        try:
            values = strategy.validate(params)
            fused = strategy.fuse(session.members, n, torch.Generator().manual_seed(seed), context=context, **values)
        except UserError as exc:
            skipped[label] = str(exc)
            continue
        make = lambda count, g: strategy.fuse(session.members, count, g, context=context, **values).images  # noqa: E731
        rows[label] = evaluator.row(fused.images, timed(make), floor)
        used[label] = {"strategy": name, **_jsonable(values)}
    return rows, used, skipped


def _per_class(session, n, seed, evaluator, used, context, progress, should_stop) -> PerClass:
    """FD per class (``PerClass``): ``n`` samples per row in all, split over the classes."""
    if session.run.num_classes < 2 or evaluator.reference_labels is None:
        raise UserError(f"run {session.run.path} has no classes (its images had no labels): --per-class needs them")
    classes = session.run.num_classes
    names = list(session.run.class_names) or [str(k) for k in range(classes)]
    each = max(MIN_EVAL_SAMPLES, n // classes)
    fd: dict[str, dict[str, float]] = {}
    accuracy: dict[str, dict[str, float]] = {}
    classify = getattr(evaluator.extract, "classify", lambda features: None)
    skipped: dict[str, str] = {}
    references = {}
    for k, name in enumerate(names):
        reference = evaluator.reference[evaluator.reference_labels == k]
        if len(reference) < MIN_EVAL_SAMPLES:
            skipped[name] = f"{len(reference)} reference images of this class (FD needs {MIN_EVAL_SAMPLES})"
        else:
            references[name] = (k, reference)
    makers = {name: (lambda count, g, label, m=member: m.sample(count, g, label=label))
              for name, member in session.generators().items() if member.conditioned}
    for label, values in used.items():
        strategy, params = make_fusion(values["strategy"]), {k: v for k, v in values.items() if k != "strategy"}
        makers[label] = (lambda count, g, asked, s=strategy, p=params:
                         s.fuse(session.members, count, g, context=context, label=asked, **p).images)
    if not any(m.conditioned for m in session.generators().values()):
        skipped["members"] = "no member of this run learnt classes (classes=off)"
    for index, (row, make) in enumerate(makers.items()):
        _check(should_stop)
        progress(f"{row} per class", index / max(1, len(makers)))
        try:
            made = {name: _features_of(evaluator, make(each, torch.Generator().manual_seed(seed), k))
                    for name, (k, _) in references.items()}
        except UserError as exc:
            skipped[row] = str(exc)
            continue
        fd[row] = {name: frechet_distance(made[name], reference) for name, (_, reference) in references.items()}
        accuracy[row] = _accuracy(classify, made, references)
    if fd:
        accuracy["reference"] = _accuracy(classify, {name: r for name, (_, r) in references.items()}, references)
    return PerClass(names, {name: each for name in references}, {name: len(r) for name, (_, r) in references.items()},
                    fd, skipped, {row: shares for row, shares in accuracy.items() if shares})


def _accuracy(classify, features: dict[str, np.ndarray], references: dict[str, tuple[int, np.ndarray]]) -> dict[str, float]:
    """Class → the share of ``features`` the judge classifies as that class ({} without a classifier)."""
    shares = {}
    for name, (k, _) in references.items():
        predicted = classify(features[name])
        if predicted is None:
            return {}
        shares[name] = float(np.mean(predicted == k))
    return shares


def _features_of(evaluator: Evaluator, images: torch.Tensor) -> np.ndarray:
    return np.concatenate([evaluator.extract(part) for part in images.split(1000)])


RATE_SAMPLES = 256


def _rate(make: Callable[[int, torch.Generator], Any], n: int, seed: int, bank: SampleBank) -> float:
    """Samples per second of the real path: the bank bypassed, so no cached sample is reused."""
    count = min(n, RATE_SAMPLES)
    with bank.bypass():
        started = time.perf_counter()
        make(count, torch.Generator().manual_seed(seed + 7919))
        return count / max(time.perf_counter() - started, 1e-9)


def _as_plan(label: str, value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, tuple):
        return value
    return label, dict(value or {})


def _check(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise EvaluationCancelled()


def lazy_context(session) -> FusionContext:
    """A fusion context that loads the data and its picking features only if a strategy asks for them."""
    made: list[PickingSpace] = []

    def picking() -> PickingSpace:
        if not made:
            made.append(PickingSpace(session.data or load_data(session.config.data), session.device))
        return made[0]

    return FusionContext(features=lambda images: picking().extract(images),
                         fit_reference=lambda: picking().fit_reference(), checkpoints=session.checkpoint_history(),
                         class_reference=lambda label: picking().class_reference(label))


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in values.items()}
