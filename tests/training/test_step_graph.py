"""Whole-step CUDA graphs (engine/training/step_graph.py), checked on the CPU with an emulated graph.

tests/training/graph_emulator.py replays the recorded ops with host values frozen at capture time,
as a GPU does, so a step that is not replayable trains differently (or fails to capture) here too.
CPU kernels are deterministic, so a replayed run must equal the eager run bit for bit. The same
checks on a real GPU are in tests/cuda/test_cuda.py.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from engine.accel import FastPaths
from engine.config import RunConfig
from engine.members.registry import run_config
from engine.members.base import Member
from engine.session import Session
from engine.training.events import MemberFailed, StepLogged
from engine.training.health import Health
from engine.training.step_graph import StepGraph
from engine.training.trainer import STEP_GRAPH_OFF
from engine.members.registry import member_class
from tests.conftest import tiny_config_dict
from tests.training.graph_emulator import CpuGraphRecorder

# fused: the CPU's fused Adam reads its step count inside the kernel, as capturable Adam does on a GPU
STEP_GRAPH = FastPaths(fused_optimizer=True, step_graph=True)
KINDS = ("dcgan", "vae", "diffusion", "judge")


def _config(tiny_npz, members, **train) -> RunConfig:
    # losses are kept as tensors over 3 steps before they are read: a reused output buffer would show
    raw = tiny_config_dict(tiny_npz, members, **{"log_every": 3, **train})
    raw["data"]["flip"] = True  # the flips' random draws are part of the captured step
    return run_config(raw)


def _train(session: Session, steps: int, graphs: bool) -> list:
    if graphs:
        session.step_graphs.recorder = CpuGraphRecorder()
    events: list = []
    session.train(steps, [events.append])
    return events


def _losses(events) -> list:
    return [(e.member, e.step, e.losses) for e in events if isinstance(e, StepLogged)]


def _assert_same_state(a: Member, b: Member) -> None:
    first, second = a.state_dict(), b.state_dict()
    assert first["step"] == second["step"]
    assert torch.equal(first["rng"], second["rng"])
    for net, weights in first["nets"].items():
        for key, value in weights.items():
            assert torch.equal(value, second["nets"][net][key]), f"{net}.{key}"
    for name, optimizer in first["optims"].items():
        for index, state in optimizer["state"].items():
            for key, value in state.items():
                assert torch.equal(value, second["optims"][name]["state"][index][key]), f"{name}[{index}].{key}"


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("kind", KINDS)
def test_replayed_steps_train_exactly_as_eager_steps(tiny_npz, tmp_path, kind, channels_last):
    config = _config(tiny_npz, (kind,))
    fast = dataclasses.replace(STEP_GRAPH, channels_last=channels_last)
    eager = Session.create(config, tmp_path / "eager", fast=fast)
    graphed = Session.create(config, tmp_path / "graph", fast=fast)
    eager_events, events = _train(eager, 9, graphs=False), _train(graphed, 9, graphs=True)
    assert not [e for e in events if isinstance(e, MemberFailed)]
    assert graphed.step_graphs[kind].captures == 1  # 3 warm-up steps, one capture, 6 replays
    assert graphed.step_graphs.recorder.recorded_ops > 50  # forward, backward, optimizer: not an empty graph
    assert len(_losses(events)) == 3 and _losses(events) == _losses(eager_events)
    _assert_same_state(eager.members[kind], graphed.members[kind])


def test_the_emulation_is_as_strict_as_a_gpu_about_host_values(tiny_npz, tmp_path):
    """A step that reads the host is caught: a frozen EMA weight, and a host read during capture."""
    config = _config(tiny_npz, ("dcgan",))
    emas = []
    for graphs in (False, True):
        session = Session.create(config, tmp_path / f"host-ema-{graphs}", fast=STEP_GRAPH)
        session.members["dcgan"].step_count = None  # the EMA's warm-up from member.step, a Python int
        _train(session, 8, graphs)
        emas.append(session.members["dcgan"].G_ema.state_dict())
    assert not all(torch.equal(emas[0][key], emas[1][key]) for key in emas[0])

    # foreach Adam (not fused, not capturable) reads its step count on the host: no graph, eager goes on
    host_adam = FastPaths(step_graph=True)
    eager = Session.create(config, tmp_path / "eager", fast=host_adam)
    failing = Session.create(config, tmp_path / "failing", fast=host_adam)
    eager_events, events = _train(eager, 8, graphs=False), _train(failing, 8, graphs=True)
    [failed] = [e for e in events if isinstance(e, MemberFailed)]
    assert failed.action == STEP_GRAPH_OFF and "reads a tensor on the host" in failed.message
    assert failed.step == 4  # after the three warm-up steps
    assert not failing.members["dcgan"].fast.step_graph and "dcgan" not in failing.step_graphs
    assert _losses(events) == _losses(eager_events)  # the failed capture changed nothing
    _assert_same_state(eager.members["dcgan"], failing.members["dcgan"])


def test_a_new_batch_size_or_restored_state_is_captured_again(tiny_npz, tmp_path):
    config = _config(tiny_npz, ("dcgan",))
    eager = Session.create(config, tmp_path / "eager", fast=STEP_GRAPH)
    graphed = Session.create(config, tmp_path / "graph", fast=STEP_GRAPH)
    reference, member = eager.members["dcgan"], graphed.members["dcgan"]
    graph = StepGraph(member, graphed.dataset, CpuGraphRecorder())

    def both(batch_size: int) -> None:
        expected = reference.train_step(reference.draw_batch(eager.dataset, batch_size))
        got = graph.step(batch_size)
        assert {k: v.item() for k, v in got.items()} == {k: v.item() for k, v in expected.items()}

    snapshot = copy.deepcopy(member.state_dict())
    for batch_size in [16] * 5 + [8] * 5:  # an out-of-memory halving
        both(batch_size)
    assert graph.captures == 2
    for each in (reference, member):  # a rollback: older weights and optimizer state, half the learning rate
        Health._restore(each, copy.deepcopy(snapshot), 0.5)
    for _ in range(5):
        both(8)
    assert graph.captures == 3
    for each in (reference, member):  # a checkpoint loaded into a live member
        each.load_state_dict(copy.deepcopy(snapshot))
    for _ in range(5):
        both(8)
    assert graph.captures == 4
    _assert_same_state(reference, member)


def test_a_run_saved_between_replays_resumes_as_an_eager_one(tiny_npz, tmp_path):
    config = _config(tiny_npz, ("dcgan", "vae"), checkpoint_every=7)
    finals = []
    for graphs in (False, True):
        folder = tmp_path / f"run-{graphs}"
        _train(Session.create(config, folder, fast=STEP_GRAPH), 7, graphs)
        again = Session.open(folder, fast=STEP_GRAPH)
        assert again.step == 7
        _train(again, 13, graphs)
        finals.append(again)
    for name in ("dcgan", "vae"):
        _assert_same_state(finals[0].members[name], finals[1].members[name])


def test_the_device_side_ema_weight_matches_the_host_one(tiny_npz, tmp_path):
    config = _config(tiny_npz, ("dcgan",))
    host = Session.create(config, tmp_path / "host", fast=FastPaths(fused_optimizer=True))
    device = Session.create(config, tmp_path / "device", fast=STEP_GRAPH)
    assert _losses(_train(host, 6, False)) == _losses(_train(device, 6, False))  # the EMA does not feed back
    for key, value in host.members["dcgan"].G_ema.state_dict().items():
        torch.testing.assert_close(device.members["dcgan"].G_ema.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_step_graphs_are_chosen_on_cuda_only_and_never_with_fp16():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert member_class("vae").fast_paths(gpu, precision="fp32", compile="step-graph") == FastPaths(fused_optimizer=True,
                                                                                     step_graph=True)
    assert not member_class("vae").fast_paths(gpu, precision="fp16", compile="step-graph").step_graph
    assert member_class("vae").fast_paths(gpu, precision="bf16", compile="step-graph").step_graph
    assert not member_class("vae").fast_paths(cpu, compile="step-graph").step_graph
    assert not member_class("vae").fast_paths(gpu, precision="fp32", steps=10**6).step_graph  # not chosen by "auto" yet
    assert "whole step as one CUDA graph" in STEP_GRAPH.describe()


def test_asking_for_step_graphs_without_a_gpu_says_why_they_are_off(tiny_config, tmp_path):
    session = Session.create(tiny_config(members=("vae",), compile="step-graph"), tmp_path / "run")
    assert not session.members["vae"].fast.step_graph
    assert any("whole-step CUDA graphs were asked for but are off: CUDA graphs need a CUDA GPU" in note
               for note in session.notes)


def test_a_checkpoint_opens_with_the_opening_members_optimizer_kernels(tiny_config, tmp_path):
    """torch's load_state_dict would bring back the saving run's fused/foreach choice."""
    Session.create(tiny_config(members=("vae",), checkpoint_every=2), tmp_path / "run", fast=FastPaths()).train(2)
    fused = Session.open(tmp_path / "run", fast=FastPaths(fused_optimizer=True))
    group = fused.members["vae"].optimizers["vae"].param_groups[0]
    assert group["fused"] is True and group["foreach"] is None
    assert fused.train(4).step == 4
    plain = Session.open(tmp_path / "run", fast=FastPaths())  # torch's default kernels again
    assert plain.members["vae"].optimizers["vae"].param_groups[0]["fused"] is None
    assert plain.train(6).step == 6
