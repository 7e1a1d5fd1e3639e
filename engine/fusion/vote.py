"""Committee vote / rejection sampling: draw a pool K× larger than asked from all members, let
every member that can judge realism (discriminator logit, VAE ELBO, judge confidence) rank the
pool, average the ranks, and keep the best 1/K. Optional quotas keep each member's share of the
output equal to its share of the pool, protecting diversity (recall) from a greedy committee.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from engine.config import Param
from engine.errors import UserError
from engine.fusion.base import FusedBatch, Fusion, FusionContext, generators_of, seeded_copy
from engine.members.base import Member
from engine.members.registry import kinds_text, member_class


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
        Param("quotas", False, help="keep each member's share of the output equal to its share of the pool"),
        Param("voters", None, 0.0, 100.0, per_member=True, scorers=True,
              help="weight of each member's vote (members without a realism score cannot vote)"),
    )
    evaluation_plan = {
        "vote": {"k": 4},
        "vote-quotas": {"k": 4, "quotas": True},
        "vote-judge": {"k": 4, "voters": {"judge": 1.0}},
        "vote-gan-judge": {"k": 4, "voters": {"dcgan": 1.0, "judge": 1.0}},
    }
    quick_params = {"k": 2}

    @classmethod
    def unavailable(cls, kinds: Sequence[str]) -> str:
        scorers = any(member_class(k).can_score for k in kinds)
        return "" if scorers else f"needs a member that scores images ({kinds_text('score')})"

    def fuse(self, members: Mapping[str, Member], n: int, generator: torch.Generator, *,
             context: FusionContext | None = None, **params: Any) -> FusedBatch:
        k = int(params.get("k", 4))
        found = generators_of(members)
        counts = split_evenly(k * n, len(found))
        pool, owner = [], []
        for (name, member), count in zip(found.items(), counts):
            if count:
                pool.append(member.sample(count, seeded_copy(generator)))
                owner += [name] * count
        images = torch.cat(pool)
        if k == 1:
            return FusedBatch(images, tuple(owner))
        combined = self.committee(members, images, params.get("voters"))
        keep = self.select(combined, owner, list(found), n, bool(params.get("quotas")))
        return FusedBatch(images[keep], tuple(owner[i] for i in keep.tolist()))

    @staticmethod
    def committee(members: Mapping[str, Member], images: torch.Tensor,
                  voters: Mapping[str, float] | None) -> torch.Tensor:
        """Weighted mean of each voter's percentile rank of every pool image."""
        total, weight_sum = torch.zeros(len(images), dtype=torch.float64), 0.0
        unknown = sorted(set(voters or {}) - set(members))
        if unknown:  # a misspelt voter would silently not vote
            raise UserError(f"voter {unknown[0]!r} is not a member of this run ({', '.join(members)})")
        for name, member in members.items():
            weight = 1.0 if voters is None else float(voters.get(name, 0.0))
            if weight <= 0:
                continue
            scores = member.score(images)
            if scores is None:
                if voters is not None:  # asked by name to vote
                    raise UserError(f"{name} cannot vote: it has no realism score ({kinds_text('score')} has one)")
                continue
            total += weight * percentile_ranks(scores)
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


def interleave(kept: torch.Tensor, owner: list[str]) -> torch.Tensor:
    """``kept`` (pool order, each member's images together) taken one member at a time in turn:
    the first row of a grid shows every member that won a place, not one member's images."""
    groups: dict[str, list[int]] = {}
    for index in kept.tolist():
        groups.setdefault(owner[index], []).append(index)
    order = [group[i] for i in range(max(map(len, groups.values()), default=0))
             for group in groups.values() if i < len(group)]
    return torch.tensor(order, dtype=torch.long)
