"""The GPU path: members, fast paths, checkpoints across devices, evaluation and NCCL on CUDA.

These need a CUDA GPU and are skipped (visibly) without one; `bash tests/cuda/run_on_gpu.sh` runs
them and the CUDA benchmark on a GPU machine (docs/performance.md).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.accel import FastPaths
from engine.session import Session
from engine.training.events import MemberFailed, StepLogged
from engine.training.trainer import Trainer
from engine.members.registry import member_class

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROOT = Path(__file__).resolve().parents[2]
KINDS = ("dcgan", "vae", "diffusion", "judge")


@pytest.fixture
def cuda_config(tiny_config):
    def make(**train):
        return tiny_config(device="cuda", log_every=5, checkpoint_every=10, **train)
    return make


def test_auto_fast_paths_on_this_gpu_are_what_the_table_says():
    gpu = torch.device("cuda")
    for kind in KINDS:
        paths = member_class(kind).fast_paths(gpu)
        assert paths.fused_optimizer and paths.amp_dtype is None and not paths.compile  # measured best


def test_every_member_trains_and_samples_on_cuda(cuda_config, tmp_path):
    session = Session.create(cuda_config(), tmp_path / "run")
    events = []
    session.train(20, [events.append])
    assert not [e for e in events if isinstance(e, MemberFailed)]
    for kind in KINDS:
        losses = [e.losses for e in events if isinstance(e, StepLogged) and e.member == kind]
        assert len(losses) == 4 and all(math.isfinite(v) for row in losses for v in row.values())
    for name, member in session.generators().items():
        images = member.sample(24, torch.Generator().manual_seed(3))
        again = member.sample(24, torch.Generator().manual_seed(3))
        assert images.device.type == "cuda" and images.shape == (24, 1, 16, 16)
        assert images.min() >= -1 and images.max() <= 1
        assert torch.equal(images, again), name


def _train_without_host_sync(session: Session, warm_up: int, steps: int = 40) -> None:
    """``warm_up`` steps freely (allocations, cuDNN autotuning, captures), then any host
    synchronisation until ``steps`` raises."""
    trainer = Trainer(session)
    for step in range(1, steps):
        if step == warm_up + 1:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        try:
            for member in session.members.values():
                trainer._train_member(member, step)
        except BaseException:
            torch.cuda.set_sync_debug_mode("default")
            raise
    torch.cuda.set_sync_debug_mode("default")
    trainer.flush_logs(steps)


def test_the_training_step_never_waits_for_the_gpu(cuda_config, tmp_path):
    """Between log points nothing reads a value back: any host synchronisation raises here."""
    _train_without_host_sync(Session.create(cuda_config(), tmp_path / "run"), warm_up=1)


def test_a_cuda_checkpoint_resumes_and_samples_on_the_cpu(cuda_config, tmp_path):
    session = Session.create(cuda_config(), tmp_path / "run")
    session.train(10)
    gpu = session.members["vae"].sample(8, torch.Generator().manual_seed(1)).cpu()
    cpu_session = Session.open(tmp_path / "run", "cpu")
    cpu = cpu_session.members["vae"].sample(8, torch.Generator().manual_seed(1))
    assert torch.allclose(gpu, cpu, atol=1e-2)  # same weights and noise; kernels (and TF32 convs) differ
    assert cpu_session.train(12).step == 12


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_each_precision_trains_on_cuda(cuda_config, tmp_path, precision):
    session = Session.create(cuda_config(precision=precision), tmp_path / "run")
    events = []
    session.train(10, [events.append])
    assert not [e for e in events if isinstance(e, MemberFailed)]
    expected = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    assert all(m.fast.amp_dtype == expected for m in session.members.values())
    assert Session.open(tmp_path / "run").step == 10


@pytest.mark.parametrize("mode", ["on", "graphs"])
def test_torch_compile_works_on_cuda_without_falling_back(tiny_config, tmp_path, mode):
    config = tiny_config(members=("vae", "judge"), device="cuda", log_every=5, compile=mode)
    session = Session.create(config, tmp_path / "run")
    assert all(m.fast.compile for m in session.members.values()), session.notes
    events = []
    session.train(10, [events.append])
    assert not [e for e in events if isinstance(e, MemberFailed)], [e.message for e in events
                                                                     if isinstance(e, MemberFailed)]
    assert all(m.fast.compile for m in session.members.values())


def test_fusions_and_evaluation_run_on_cuda(cuda_config, tmp_path):
    from engine.evaluation import evaluate
    from engine.metrics.features import JudgeRecipe

    session = Session.create(cuda_config(), tmp_path / "run")
    session.train(20)  # two checkpoints, for the weight soup
    report = evaluate(session, 64, judge_recipe=JudgeRecipe(steps=50, batch_size=32))
    assert set(report.members) == {"dcgan", "vae", "diffusion"} and len(report.fusions) >= 6
    assert not report.skipped
    assert all(math.isfinite(row.fd) for row in [*report.members.values(), *report.fusions.values()])


def test_nccl_rank_trains_through_torchrun(tmp_path, tiny_npz):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
               str(ROOT / "main.py"), "train", "--data", str(tiny_npz), "--size", "16", "--members", "vae,judge",
               "--steps", "20", "--out", str(tmp_path / "run"), "--device", "cuda", "--distributed", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step-0000020").is_dir()


STEP_GRAPH = FastPaths(fused_optimizer=True, step_graph=True)


def _step_graph_runs(config, folder: Path, steps: int, resume_at: int | None = None) -> dict:
    """The same run trained with eager steps and with replayed whole-step graphs."""
    runs = {}
    for graphs in (False, True):
        def made(session: Session) -> Session:
            if not graphs:
                session.step_graphs.update({name: None for name in session.members})  # eager steps
            return session

        session = made(Session.create(config, folder / f"graphs-{graphs}", fast=STEP_GRAPH))
        if resume_at is not None:
            session.train(resume_at)
            session = made(Session.open(folder / f"graphs-{graphs}", fast=STEP_GRAPH))
        events = []
        session.train(steps, [events.append])
        failed = [e.message for e in events if isinstance(e, MemberFailed)]
        assert not failed, failed
        runs[graphs] = (session, [e for e in events if isinstance(e, StepLogged)])
    return runs


def _assert_close_runs(runs: dict) -> None:
    (eager, eager_logs), (graphed, logs) = runs[False], runs[True]
    for name, member in graphed.members.items():
        assert graphed.step_graphs[name] is not None and graphed.step_graphs[name].captures == 1, name
        reference = eager.members[name]
        assert member.step == reference.step
        # the registered generator advanced exactly as eager draws would: checkpoints resume the same stream
        assert torch.equal(member.generator.get_state(), reference.generator.get_state()), name
        for net, weights in member.state_dict()["nets"].items():
            for key, value in weights.items():
                torch.testing.assert_close(value, reference.state_dict()["nets"][net][key], rtol=1e-3, atol=1e-3)
    assert [e.member for e in logs] == [e.member for e in eager_logs]
    for got, expected in zip(logs, eager_logs):
        assert got.losses == pytest.approx(expected.losses, rel=1e-3, abs=1e-4), got.member


def test_replayed_step_graphs_train_like_eager_steps_on_cuda(cuda_config, tmp_path):
    runs = _step_graph_runs(cuda_config(), tmp_path, 15)  # 3 warm-up steps, one capture, 12 replays
    _assert_close_runs(runs)


def test_a_step_graph_run_resumes_on_cuda(cuda_config, tmp_path):
    runs = _step_graph_runs(cuda_config(), tmp_path, 15, resume_at=7)
    _assert_close_runs(runs)
    group = runs[True][0].members["vae"].optimizers["vae"].param_groups[0]
    assert group["capturable"] and group["fused"]


def test_replayed_steps_never_wait_for_the_gpu(cuda_config, tmp_path):
    session = Session.create(cuda_config(), tmp_path / "run", fast=STEP_GRAPH)
    _train_without_host_sync(session, warm_up=5)  # 3 warm-up steps, the capture, a first replay
    assert all(graph.captures == 1 for graph in session.step_graphs.values())


def test_the_step_graph_setting_reaches_every_member_on_cuda(tiny_config, tmp_path):
    config = tiny_config(device="cuda", log_every=5, compile="step-graph", precision="bf16")
    session = Session.create(config, tmp_path / "run")
    assert all(m.fast.step_graph for m in session.members.values()), session.notes
    events = []
    session.train(10, [events.append])
    assert not [e for e in events if isinstance(e, MemberFailed)]
    assert all(graph.captures == 1 for graph in session.step_graphs.values())


def test_the_self_test_checks_cuda_graphs_on_a_gpu(tmp_path):
    import io

    from engine.self_test import run_self_test

    out = io.StringIO()
    passed, results = run_self_test(device="cuda", steps=2, out=out, keep=tmp_path / "work")
    assert passed, out.getvalue()
    assert results[-1].name == "cuda graphs" and results[-1].detail.startswith("dcgan, vae: 10 steps")
