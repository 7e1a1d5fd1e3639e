"""Checkpoints round-trip nested optimizer state through safetensors + JSON, atomically."""
from __future__ import annotations

import pytest
import torch

from engine.errors import UserError
from engine.store.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from engine.store.tensor_tree import join_state, split_state


def test_tensor_tree_round_trips_optimizer_state():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.5, 0.9))
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"step": 7, "opt": opt.state_dict(), "rng": torch.Generator().manual_seed(3).get_state(),
             "pair": (1, 2.5), "none": None}
    tensors, skeleton = split_state(state)
    back = join_state(tensors, skeleton)
    assert back["step"] == 7 and back["pair"] == (1, 2.5) and back["none"] is None
    assert set(back["opt"]["state"]) == {0, 1}  # int keys survive JSON
    torch.testing.assert_close(back["opt"]["state"][0]["exp_avg"], state["opt"]["state"][0]["exp_avg"])
    fresh = torch.optim.Adam(net.parameters())
    fresh.load_state_dict(back["opt"])
    assert fresh.param_groups[0]["betas"][0] == 0.5


def test_save_is_atomic_prunes_and_ignores_leftovers(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".tmp-step-0000001-99999").mkdir()  # a crash during an earlier save
    for step in (1, 2, 3, 4):
        save_checkpoint(folder, step, {"m": {"w": torch.full((2,), float(step))}}, {"elapsed": 1.0}, keep=3)
    assert [p.name for p in list_checkpoints(folder)] == ["step-0000002", "step-0000003", "step-0000004"]
    assert not list(folder.glob(".tmp-*"))
    meta, states = load_checkpoint(folder / "step-0000004")
    assert meta["step"] == 4 and states["m"]["w"].tolist() == [4.0, 4.0]


def test_damaged_safetensors_gives_a_clear_message(tmp_path):
    folder = tmp_path / "checkpoints"
    path = save_checkpoint(folder, 1, {"m": {"w": torch.zeros(100)}}, {}, keep=3)
    data = (path / "m.safetensors").read_bytes()
    (path / "m.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="m.safetensors is damaged"):
        load_checkpoint(path)
