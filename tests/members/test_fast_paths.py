"""Fast paths on the CPU: autocast (bf16, fp16 with a gradient scaler), compile and its fallback."""
from __future__ import annotations

import math

import pytest
import torch

import engine.accel as accel
from engine.accel import FastPaths, bf16_is_native
from engine.session import Session
from engine.training.events import MemberFailed, StepLogged
from engine.training.trainer import COMPILE_OFF
from engine.members.registry import member_class


@pytest.mark.parametrize("native", [False, True])
def test_auto_on_the_cpu_is_channels_last_fused_and_bf16_only_where_native_and_explicit_settings_win(
        monkeypatch, native):
    cpu = torch.device("cpu")
    monkeypatch.setattr(accel, "bf16_is_native", lambda device: native)
    amp = torch.bfloat16 if native else None  # emulated bf16 made every member 2-16x slower
    assert member_class("dcgan").fast_paths(cpu) == FastPaths(amp, channels_last=True, fused_optimizer=True)  # measured faster
    assert member_class("dcgan").fast_paths(cpu, precision="fp32").amp_dtype is None
    assert member_class("dcgan").fast_paths(torch.device("mps")) == FastPaths()  # not measured there: nothing
    assert member_class("vae").fast_paths(cpu, precision="bf16").amp_dtype == torch.bfloat16
    fp16 = member_class("vae").fast_paths(cpu, precision="fp16")
    assert fp16.amp_dtype == torch.float16 and fp16.grad_scaler
    assert member_class("judge").fast_paths(cpu, compile="on").compile
    assert "bf16 autocast" in member_class("vae").fast_paths(cpu, precision="bf16").describe()


@pytest.mark.parametrize("probes, native", [({}, False), ({"_is_avx512_bf16_supported": False}, False),
                                             ({"_is_avx512_bf16_supported": True}, True),
                                             ({"_is_avx512_bf16_supported": False, "_is_amx_tile_supported": True},
                                              True)])
def test_bf16_is_native_on_cpus_with_avx512_bf16_or_amx(monkeypatch, probes, native):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)  # a torch without the probe: not native
    for name, answer in probes.items():
        monkeypatch.setattr(torch.cpu, name, lambda answer=answer: answer, raising=False)
    assert bf16_is_native(torch.device("cpu")) is native
    assert not bf16_is_native(torch.device("mps"))


def test_auto_on_cuda_follows_the_h100_measurements(monkeypatch):
    monkeypatch.setattr(accel, "compile_available", lambda device: "")  # as on a machine with Triton
    gpu = torch.device("cuda")
    short = member_class("diffusion").fast_paths(gpu, steps=1500)
    assert short == FastPaths(fused_optimizer=True, channels_last=True)  # at 1500 steps graphs don't pay off
    assert not member_class("vae").fast_paths(gpu).channels_last  # measured for the UNet only
    long = member_class("diffusion").fast_paths(gpu, steps=3000)
    assert long.compile and long.compile_mode == accel.GRAPHS and long.amp_dtype is None
    assert not member_class("dcgan").fast_paths(gpu, steps=3000).compile  # its compile warm-up needs ~6000 steps to win back
    assert not member_class("diffusion").fast_paths(gpu, compile="off", steps=10**6).compile
    monkeypatch.setattr(accel, "compile_available", lambda device: "the packaged app carries no compiler")
    assert not member_class("diffusion").fast_paths(gpu, steps=10**6).compile


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_members_train_under_autocast_and_resume(tiny_config, tmp_path, precision):
    config = tiny_config(precision=precision, checkpoint_every=3)
    session = Session.create(config, tmp_path / "run")
    events = []
    session.train(3, [events.append])
    logged = [e for e in events if isinstance(e, StepLogged)]
    assert {e.member for e in logged} == {"dcgan", "vae", "diffusion", "judge"}
    assert all(math.isfinite(v) for e in logged for v in e.losses.values())
    assert not [e for e in events if isinstance(e, MemberFailed)]
    if precision == "fp16":
        scale = session.members["vae"].scalers["vae"].get_scale()
        again = Session.open(tmp_path / "run")
        assert again.members["vae"].scalers["vae"].get_scale() == scale  # the scaler's state is saved
        assert again.train(4).step == 4


def test_compiled_networks_give_the_eager_losses_and_keep_their_weight_names(tiny_config, tmp_path):
    config = tiny_config(members=("vae",))
    eager = Session.create(config, tmp_path / "eager")
    compiled = Session.create(config, tmp_path / "compiled")
    compiled.members["vae"].set_compile(True, backend="eager")  # dynamo's graphs, run without codegen
    losses = {}
    for label, session in (("eager", eager), ("compiled", compiled)):
        events = []
        session.train(3, [events.append])
        losses[label] = [e.losses["loss"] for e in events if isinstance(e, StepLogged)]
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-5)
    names = set(compiled.members["vae"].state_dict()["nets"]["vae"])
    assert names == set(eager.members["vae"].state_dict()["nets"]["vae"])
    assert not any("_orig_mod" in name for name in names)


def test_a_failing_compiler_falls_back_to_eager_and_training_goes_on(tiny_config, tmp_path):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler in this build")

    session = Session.create(tiny_config(members=("dcgan", "judge")), tmp_path / "run")
    session.members["dcgan"].set_compile(True, backend=broken_backend)
    events = []
    finished = session.train(4, [events.append])
    assert finished.step == 4 and finished.reason == "done"
    failed = [e for e in events if isinstance(e, MemberFailed)]
    assert [(e.member, e.action) for e in failed] == [("dcgan", COMPILE_OFF)]
    assert "no C++ compiler" in failed[0].message
    assert not session.members["dcgan"].fast.compile
    assert session.members["dcgan"].step == 4


def test_channels_last_weights_and_their_optimizer_state_survive_a_resume(tiny_config, tmp_path):
    session = Session.create(tiny_config(members=("dcgan",), checkpoint_every=2), tmp_path / "run")
    assert session.members["dcgan"].fast.channels_last  # the CPU default
    session.train(2)
    again = Session.open(tmp_path / "run")  # the checkpoint holds plain contiguous tensors
    member = again.members["dcgan"]
    conv = next(p for p in member.D.parameters() if p.dim() == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    moments = member.optimizers["D"].state[conv]
    assert moments["exp_avg"].stride() == conv.stride() == moments["exp_avg_sq"].stride()
    assert again.train(4).step == 4
    assert session.dataset.batch(4, member.generator, channels_last=True).images.is_contiguous(
        memory_format=torch.channels_last)
