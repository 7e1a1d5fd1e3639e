"""Committee vote / rejection sampling: draw a pool K× larger than asked from all members and keep
about 1/K of it: by default the images a density ratio towards held-out training images draws
(``matched``), otherwise those every member that can judge realism (discriminator logit, VAE ELBO,
judge confidence) ranks best.

How many images each member gets (``shares``):
- ``matched`` (default): the kept images are picked from the pool towards held-out training images
  in the picking feature space (engine/metrics/picking.py, never the evaluation's;
  engine/fusion/matching.py; ``pick``: kernel herding, the default, or drawn ∝ a density ratio); a
  member whose best images are far worse than the best member's, or whose pool looks collapsed,
  takes no part; members that sample in
  one network pass draw a larger pool (they cost little). The critics do not vote here; with
  ``voters`` named, or without picking features, it is ``auto``.
- ``auto``: the committee ranks each member's images among that member's own only (a
  discriminator that prefers its own generator's style, or an ELBO that prefers blur, cannot hand
  one member the whole output), each member's best images are measured in the picking feature
  space, and the shares are the mixture weights that bring them closest to held-out training images
  (engine/fusion/mixture.py); a member whose pool looks collapsed (feature diversity below half the
  real images') gets none. Within a member's share, a kept image pushes its near-duplicates down
  (``spread``), so rejection does not trade variety for realism. Without picking features (no
  context): even shares.
- ``even``: the same share for each member (what ``quotas`` asked for);
- ``committee``: the best ranks over the whole pool, whoever made them.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext, generators_of, seeded_copy
from engine.fusion.guide import critic_for, pick_critic
from engine.fusion.matching import ONE_PASS_POOL, PICK, PICKS, matched_keep
from engine.fusion.mixture import closest_mixture
from engine.members.base import Member
from engine.members.registry import kinds_text, member_class
from engine.metrics.frechet import feature_stats
from engine.training.diagnostics import DIVERSITY_LOW, mean_pairwise  # below DIVERSITY_LOW of the real images' spread: collapsed

SHARES = ("matched", "auto", "even", "committee")
SPREAD = 0.5  # a kept image's near-duplicates lose about half the rank range
GUIDE = 0.0  # the diffusion's candidates unguided by default


def split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def percentile_ranks(scores: torch.Tensor) -> torch.Tensor:
    """0 for the worst score, 1 for the best (ties broken by position, deterministically)."""
    order = torch.argsort(scores.double().cpu(), stable=True)
    ranks = torch.empty(len(scores), dtype=torch.float64)
    ranks[order] = torch.arange(len(scores), dtype=torch.float64)
    return ranks / max(1, len(scores) - 1)


class Vote(Fusion):
    name = "vote"
    title = "Committee vote"
    params = (
        Param("k", 4, 1, 32, help="pool size as a multiple of the images asked for; keep the best 1/k"),
        Param("shares", "matched", choices=SHARES,
              help="how many images each member gets: matched (the pool resampled towards held-out images, "
                   "weak or collapsed members left out), auto (the committee's best, shares fitted on "
                   "held-out images), even, or committee (the best ranks, whoever made them)"),
        Param("pick", PICK, choices=PICKS,
              help="with shares=matched, how the images are picked: herding (each pick brings the kept set "
                   "closest to the held-out images' distribution; no random draw) or ratio (drawn in "
                   "proportion to a density ratio)"),
        Param("spread", SPREAD, 0.0, 10.0, help="how strongly a kept image pushes down its near-duplicates "
                                                "(0: realism alone)"),
        Param("quotas", False, help="the same as shares=even (kept for older recipes)"),
        Param("voters", None, 0.0, 100.0, per_member=True, scorers=True,
              help="weight of each member's vote (members without a realism score cannot vote)"),
        Param("guide", GUIDE, 0.0, 5.0,
              help="the diffusion's candidates are drawn steered by a critic (the guide strategy's strength; "
                   "0: drawn as they come)"),
        Param("critic", "auto", choices=("auto",), member_choice="guide",
              help="the member whose judgement steers the diffusion's candidates (with guide above 0)"),
    )
    evaluation_plan = {
        "vote": {"k": 4},
        "vote-ratio": {"k": 4, "pick": "ratio"},
        "vote-fitted": {"k": 4, "shares": "auto"},
        "vote-even": {"k": 4, "shares": "even"},
        "vote-committee": {"k": 4, "shares": "committee"},
        "vote-judge": {"k": 4, "voters": {"judge": 1.0}},
        "vote-gan-judge": {"k": 4, "voters": {"dcgan": 1.0, "judge": 1.0}},
    }
    quick_params = {"k": 2}

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        scorers = any(member_class(k).can_score for k in kinds)
        return "" if scorers else f"needs a member that scores images ({kinds_text('score')})"

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, label: int | None = None, **params: Any) -> FusedBatch:
        k = int(params.get("k", 4))
        found = generators_of(members, label)
        if label is None and k > 1 and all(m.conditioned for m in found.values()):
            return self._class_by_class(members, n, generator, context, found, params)
        counts = split_evenly(k * n, len(found))
        shares = "even" if params.get("quotas") else params.get("shares", "matched")
        matched = (shares == "matched" and k > 1 and params.get("voters") is None and context is not None
                   and context.has_features)
        shares = "auto" if shares == "matched" else shares  # voters named, or no features: the committee's vote
        if matched:  # a member drawn in one network pass costs little: a larger pool of it
            counts = [c * (ONE_PASS_POOL if m.one_pass else 1) for c, m in zip(counts, found.values())]
        pool, owner = [], []
        steer = float(params.get("guide", GUIDE))
        critic = pick_critic(members, params.get("critic", "auto"))[1] \
            if steer > 0 and any(m.can_guide for m in members.values()) else None
        for (name, member), count in zip(found.items(), counts):
            if not count:
                continue
            if critic is not None and member.can_be_guided:
                pool.append(member.sample_guided(count, seeded_copy(generator), critic_for(critic, label), steer,
                                                 label=label))
            else:
                pool.append(member.sample(count, seeded_copy(generator), label=label))
            owner += [name] * count
        images = torch.cat(pool)
        if k == 1:
            return FusedBatch(images, tuple(owner))
        if matched:
            return self._matched(images, owner, list(found), n, generator, context, label,
                                 params.get("pick", PICK))
        if shares == "committee":
            combined = self.committee(members, images, params.get("voters"), label=label)
            keep = self.select(combined, owner, list(found), n, quotas=False)
            return FusedBatch(images[keep], tuple(owner[i] for i in keep.tolist()))
        groups = member_groups(owner, list(found))
        ranks = self.committee(members, images, params.get("voters"), groups, label)
        enough = all(len(own) >= 2 for own in groups)  # a pool too small to fit shares on: even shares
        features = _features(context, images) if shares == "auto" and enough else None
        counts = split_evenly(n, len(found)) if features is None else \
            fitted_counts(features, ranks, groups, list(found), n, context.reference_for(label))
        spread = float(params.get("spread", SPREAD)) if features is not None else 0.0
        kept = [own[pick_spread(ranks[own], None if features is None else features[own.numpy()], count, spread)]
                for own, count in zip(groups, counts) if count]
        keep = interleave(torch.sort(torch.cat(kept)).values, owner)
        return FusedBatch(images[keep], tuple(owner[i] for i in keep.tolist()))

    @staticmethod
    def _matched(images: torch.Tensor, owner: list[str], names: list[str], n: int, generator: torch.Generator,
                 context: FusionContext, label: int | None, pick: str = PICK) -> FusedBatch:
        groups = member_groups(owner, names)
        features = _features(context, images)
        reference = context.reference_for(label)
        allowed = [len(own) > 0 and not flat for own, flat in zip(groups, collapsed(features, groups, reference))]
        draws = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        keep = interleave(matched_keep(features, groups, reference, n, draws, allowed, pick), owner)
        return FusedBatch(images[keep], tuple(owner[i] for i in keep.tolist()))

    def _class_by_class(self, members: Mapping[str, Member], n: int, generator: torch.Generator,
                        context: FusionContext | None, found: Mapping[str, Member], params: Mapping[str, Any]) -> FusedBatch:
        """Any class, from generators that all learnt classes: a vote for each class, given the
        class's share of the training images, the images taken one class at a time in turn. A vote
        over a pool of every class kept the classes its critics find easiest (Fashion-MNIST: FD 94.8,
        recall 0.49, where each class's own vote gave 12 to 81)."""
        shares = torch.stack([m.class_counts.shares() for m in found.values()]).mean(0)
        counts = largest_remainders(shares.tolist(), n)
        base = int(torch.randint(2**62, (1,), generator=generator))
        parts, classes = [], []
        for klass, count in enumerate(counts):
            if count:
                part = self.fuse(members, count, torch.Generator().manual_seed(base + klass), context=context,
                                 label=klass, **params)
                parts.append(part)
                classes += [str(klass)] * count
        images = torch.cat([part.images for part in parts])
        owner = [who for part in parts for who in part.provenance]
        order = interleave(torch.arange(len(images)), classes)
        return FusedBatch(images[order], tuple(owner[i] for i in order.tolist()))

    @staticmethod
    def committee(members: Mapping[str, Member], images: torch.Tensor, voters: Mapping[str, float] | None,
                  groups: Sequence[torch.Tensor] | None = None, label: int | None = None) -> torch.Tensor:
        """Weighted mean of each voter's percentile rank of every pool image; with ``groups`` (each
        member's indices in the pool) an image is ranked among its group's only. With a class asked
        for (``label``), a voter that knows classes judges each image as one of that class (the judge:
        its confidence in the class)."""
        total, weight_sum = torch.zeros(len(images), dtype=torch.float64), 0.0
        unknown = sorted(set(voters or {}) - set(members))
        if unknown:  # a misspelt voter would silently not vote
            raise UserError(f"voter {unknown[0]!r} is not a member of this run ({', '.join(members)})")
        for name, member in members.items():
            weight = 1.0 if voters is None else float(voters.get(name, 0.0))
            if weight <= 0:
                continue
            scores = member.score(images, label)
            if scores is None:
                if voters is not None:  # asked by name to vote
                    raise UserError(f"{name} cannot vote: it has no realism score ({kinds_text('score')} has one)")
                continue
            total += weight * (percentile_ranks(scores) if groups is None else grouped_ranks(scores, groups))
            weight_sum += weight
        if weight_sum == 0:
            raise UserError(f"vote needs at least one voting member with a realism score ({kinds_text('score')})")
        return total / weight_sum

    @staticmethod
    def select(combined: torch.Tensor, owner: list[str], names: list[str], n: int, quotas: bool) -> torch.Tensor:
        """Indices of the kept images, interleaved by member (a grid is not grouped by who made it)."""
        if not quotas:
            keep = torch.argsort(combined, descending=True, stable=True)[:n]
            return interleave(torch.sort(keep).values, owner)
        kept = []
        for name, quota in zip(names, split_evenly(n, len(names))):
            own = torch.tensor([i for i, who in enumerate(owner) if who == name], dtype=torch.long)
            best = torch.argsort(combined[own], descending=True, stable=True)[:quota]
            kept.append(own[best])
        return interleave(torch.sort(torch.cat(kept)).values, owner)


def grouped_ranks(scores: torch.Tensor, groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """Percentile ranks taken within each group (a member's own images) apart."""
    ranks = torch.zeros(len(scores), dtype=torch.float64)
    for group in groups:
        ranks[group] = percentile_ranks(scores.cpu()[group])
    return ranks


def _features(context: FusionContext | None, images: torch.Tensor) -> np.ndarray | None:
    if context is None or not context.has_features:
        return None
    return context.features_of(images)


def fitted_counts(features: np.ndarray, ranks: torch.Tensor, groups: Sequence[torch.Tensor], names: list[str],
                  n: int, reference: np.ndarray) -> list[int]:
    """Each member's number of images: the mixture weights (on the probability simplex) that bring
    its best 1/k images' features closest (Fréchet distance) to held-out training images, collapsed
    members left out; rounded to ``n`` in all by largest remainders."""
    best = []
    for own in groups:
        order = torch.argsort(ranks[own], descending=True, stable=True)
        best.append(features[own[order[:max(2, -(-n // len(names)))]].numpy()])
    weights = closest_mixture([feature_stats(top) for top in best], feature_stats(reference),
                              allowed=[not flat for flat in collapsed(features, groups, reference)])
    counts = largest_remainders(weights, n)
    pool_sizes = [len(own) for own in groups]
    return _within_pools(counts, pool_sizes)


def member_groups(owner: Sequence[str], names: Sequence[str]) -> list[torch.Tensor]:
    """Each member's positions in the pool."""
    return [torch.tensor([i for i, who in enumerate(owner) if who == name], dtype=torch.long) for name in names]


def collapsed(features: np.ndarray, groups: Sequence[torch.Tensor], reference: np.ndarray) -> list[bool]:
    """Which members' pools look collapsed (feature spread below DIVERSITY_LOW of the reference's);
    none when every member that drew images does (all alike: nothing to prefer)."""
    low = DIVERSITY_LOW * feature_spread(reference)
    flags = [len(own) > 0 and feature_spread(features[own.numpy()]) < low for own in groups]
    drew = [flat for flat, own in zip(flags, groups) if len(own) > 0]
    return [False] * len(groups) if drew and all(drew) else flags


def _within_pools(counts: list[int], pool_sizes: list[int]) -> list[int]:
    """No member asked for more images than it drew; the excess goes to the others in turn."""
    counts = list(counts)
    excess = sum(max(0, c - p) for c, p in zip(counts, pool_sizes))
    counts = [min(c, p) for c, p in zip(counts, pool_sizes)]
    for i in itertools.cycle(range(len(counts))):
        if excess == 0:
            break
        if counts[i] < pool_sizes[i]:
            counts[i] += 1
            excess -= 1
    return counts


def largest_remainders(weights: Sequence[float], n: int) -> list[int]:
    """Integers summing to ``n`` in proportion to ``weights`` (Hamilton's method)."""
    exact = [float(w) * n for w in weights]
    counts = [int(e) for e in exact]
    for i in sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))[:n - sum(counts)]:
        counts[i] += 1
    return counts


def feature_spread(features: np.ndarray) -> float:
    """Mean distance between pairs of feature vectors (on at most 1,000 of them, evenly taken)."""
    return mean_pairwise(torch.as_tensor(features[:: max(1, len(features) // 1000)][:1000], dtype=torch.float64))


def pick_spread(ranks: torch.Tensor, features: np.ndarray | None, count: int, spread: float) -> torch.Tensor:
    """``count`` positions, best committee rank first, each pick lowering the score of the images
    near it in feature space: score = rank − spread · exp(−d² / h²), d the distance to the nearest
    kept image and h half the median distance between the candidates' nearest neighbours (a
    near-duplicate loses about ``spread`` of rank; an image as far as a typical neighbour 2 % of it).
    ``spread`` 0 or no features: the best ranks alone."""
    if features is None or spread <= 0 or count >= len(ranks):
        return torch.argsort(ranks, descending=True, stable=True)[:count]
    x = torch.as_tensor(features, dtype=torch.float64)
    probe = x[:: max(1, len(x) // 500)]  # the bandwidth from at most ~500 candidates' nearest neighbours
    to_probe = torch.cdist(probe, x)
    to_probe[to_probe == 0] = float("inf")  # itself (and exact twins)
    h2 = (0.5 * float(to_probe.min(dim=1).values.median())) ** 2
    h2 = h2 if 0 < h2 < float("inf") else 1.0
    nearest = torch.full((len(ranks),), float("inf"), dtype=torch.float64)
    score = ranks.double().clone()
    taken = torch.zeros(len(ranks), dtype=torch.bool)
    picks = []
    for _ in range(count):
        penalised = score - spread * torch.exp(-nearest.pow(2) / h2)
        penalised[taken] = float("-inf")
        best = int(torch.argmax(penalised))
        picks.append(best)
        taken[best] = True
        nearest = torch.minimum(nearest, torch.cdist(x[best:best + 1], x)[0])
    return torch.tensor(picks, dtype=torch.long)


def interleave(kept: torch.Tensor, owner: list[str]) -> torch.Tensor:
    """``kept`` (pool order, each member's images together) taken one member at a time in turn:
    the first row of a grid shows every member that won a place, not one member's images."""
    groups: dict[str, list[int]] = {}
    for index in kept.tolist():
        groups.setdefault(owner[index], []).append(index)
    order = [group[i] for i in range(max(map(len, groups.values()), default=0))
             for group in groups.values() if i < len(group)]
    return torch.tensor(order, dtype=torch.long)
