"""A run saved on one kind of device opens on another (a CUDA generator's state does not fit a CPU one)."""
from __future__ import annotations

import torch

from engine.session import Session


def test_a_foreign_generator_state_gives_a_repeatable_new_stream(tiny_config, tmp_path):
    session = Session.create(tiny_config(members=("vae",)), tmp_path / "run")
    state = session.members["vae"].state_dict()
    state["rng"] = torch.arange(16, dtype=torch.uint8)  # what a CUDA generator saves
    draws = []
    for _ in range(2):
        member = Session.open(tmp_path / "run").members["vae"]
        member.load_state_dict(state)
        draws.append(torch.rand(4, generator=member.generator))
    assert torch.equal(draws[0], draws[1])
