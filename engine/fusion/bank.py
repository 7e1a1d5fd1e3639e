"""A cache of member samples by (member, generator state), so strategies that recombine the
same seed's images (average, mixture, vote, refine's drafts) do not sample them again.

Members draw noise in fixed blocks, so ``sample(n)`` is a prefix of ``sample(m)``, m > n: one
stored draw of the largest size serves every smaller request from the same state.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator, Mapping

import torch

from engine.members.base import Member


class SampleBank:
    def __init__(self) -> None:
        self.store: dict[tuple[str, int | None, str], torch.Tensor] = {}  # (member, class, generator state)
        self.hits = 0
        self.misses = 0
        self.bypassed = False

    @contextmanager
    def bypass(self) -> Iterator[None]:
        """Sample for real while inside (e.g. to time the uncached path)."""
        self.bypassed, before = True, self.bypassed
        try:
            yield
        finally:
            self.bypassed = before

    @contextmanager
    def attached(self, members: Mapping[str, Member]) -> Iterator["SampleBank"]:
        """While inside, ``member.sample`` of every sampling member goes through the bank."""
        wrapped = [m for m in members.values() if m.can_sample]
        for member in wrapped:
            member.sample = self._wrap(member)  # instance attribute shadows the class method
        try:
            yield self
        finally:
            for member in wrapped:
                del member.sample

    def _wrap(self, member: Member):
        original = type(member).sample

        def sample(n: int, generator: torch.Generator, label: int | None = None, **kwargs) -> torch.Tensor:
            if kwargs or self.bypassed:
                return original(member, n, generator, label=label, **kwargs)
            state = hashlib.blake2b(generator.get_state().numpy().tobytes(), digest_size=12).hexdigest()
            key = (member.name, label, state)
            stored = self.store.get(key)
            if stored is None or len(stored) < n:
                self.misses += 1
                stored = original(member, n, generator, label=label)
                self.store[key] = stored
            else:
                self.hits += 1
            return stored[:n]

        return sample

    def prefill(self, members: Mapping[str, Member], n: int, generator_state: torch.Tensor) -> None:
        """Draw ``n`` images per member from one state up front (the largest any strategy needs)."""
        for member in members.values():
            if member.can_sample:
                generator = torch.Generator()
                generator.set_state(generator_state)
                member.sample(n, generator)
