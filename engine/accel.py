"""GPU fast paths: which ones a member trains with, decided once from the device and the run's settings.

- autocast (bf16, or fp16 with a gradient scaler) for the forward passes,
- fused optimizer kernels (one launch per step instead of one per parameter group of tensors),
- channels_last memory layout for the convolutional networks and their batches,
- ``torch.compile`` of the networks a member calls in its training step, optionally replaying CUDA
  graphs, with a fallback to eager when it is unavailable (frozen build, no Triton) or fails,
- the whole training step (batch drawn, forward, backward, optimizer, EMA) captured once as one CUDA
  graph and replayed each step (engine/training/step_graph.py): no compiler needed, so it also works
  in the packaged app,
- ``cudnn.benchmark`` (set by the session: every batch has the same shape).

The "auto" choices come from ``bench speed --device cuda --ablation`` (docs/performance.md): a path
is on by default for a member only where it made that member faster, compiling only where the run
is long enough to win back its warm-up.
On the CPU channels_last and fused Adam are on by default (oneDNN's convolutions are faster in NHWC;
the fused optimizer step is 2.4–3.9× faster than torch's CPU loop, about 1 % of a step), and bf16
autocast where the CPU computes in bf16 natively (AVX512-BF16 or AMX: 1.37–1.56× faster steps); where
it does not, bf16 is emulated and 2–16× slower, so it stays off. Compiling needs a C++ toolchain and
minutes of warm-up.
"""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AutoPaths:
    """What "auto" turns on for one kind of member on one kind of device.

    Each member class declares its own (``Member.fast_defaults``, by device type), measured by
    ``bench speed --device cuda --ablation`` (docs/performance.md); a member that declares none gets
    ``DEFAULT_AUTO`` below.
    """

    amp: bool = False                # bf16 autocast (on a CPU only where bf16 is native)
    graphs_from: int | None = None   # compile with CUDA graphs for runs of at least this many steps
    channels_last: bool = False
    fused: bool = False              # fused optimizer kernels


NO_AUTO = AutoPaths()  # MPS, or a device type not measured: nothing
# On the CPU (docs/performance.md, CPU ablation) channels_last made each member's step faster, the
# fused optimizer's step was faster than torch's default CPU loop for every member, and bf16 autocast
# made every member 1.37–1.56× faster on a CPU with native bf16 (``bf16_is_native``; elsewhere fp32).
CPU_AUTO = AutoPaths(amp=True, channels_last=True, fused=True)
# On CUDA (H100) fused Adam helped every member; bf16 autocast (extra cast kernels) and torch.compile's
# default mode made each slower; CUDA graphs and channels_last are per member (their classes say).
CUDA_AUTO = AutoPaths(fused=True)
DEFAULT_AUTO = {"cpu": CPU_AUTO, "cuda": CUDA_AUTO}
GRAPHS = "reduce-overhead"  # torch.compile's mode that replays CUDA graphs
STEP_GRAPH = "step-graph"   # the compile setting that captures whole steps instead of compiling


@dataclass(frozen=True)
class FastPaths:
    amp_dtype: torch.dtype | None = None   # autocast dtype for forward passes; None = fp32
    fused_optimizer: bool = False
    compile: bool = False
    compile_mode: str = "default"          # or GRAPHS: CUDA graphs replayed by torch.compile
    step_graph: bool = False               # whole steps as one CUDA graph (exclusive with compile)
    channels_last: bool = False            # convolution weights and batches in NHWC layout

    @property
    def grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    def describe(self) -> str:
        parts = [{None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + grad scaler"}
                 [self.amp_dtype]]
        if self.channels_last:
            parts.append("channels_last")
        if self.fused_optimizer:
            parts.append("fused optimizer")
        if self.compile:
            parts.append("torch.compile" + (" + CUDA graphs" if self.compile_mode == GRAPHS else ""))
        if self.step_graph:
            parts.append("whole step as one CUDA graph")
        return ", ".join(parts)

    def autocast(self, device: torch.device):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        # autocast's cache of cast weights would be frozen into a captured graph: off when capturing
        return torch.autocast(device.type, dtype=self.amp_dtype, cache_enabled=not self.step_graph)


def compile_available(device: torch.device) -> str:
    """"" when ``torch.compile`` can work here, else why not (in words)."""
    if getattr(sys, "frozen", False):
        return "the packaged app carries no compiler"
    if device.type == "cuda":
        try:
            from torch.utils._triton import has_triton
        except ImportError:
            return "this torch has no Triton support"
        if not has_triton():
            return "Triton is not installed"
    return ""


def resolve(device: torch.device, auto: AutoPaths, precision: str = "auto", compile: str = "auto",
            steps: int = 0) -> FastPaths:
    """The fast paths for one member on ``device`` under the run's settings; ``auto``: what the
    member's class declares for this device type (``Member.fast_paths`` looks it up).

    ``steps``: the run's planned length, which decides whether compiling pays off under "auto".
    """
    cuda = device.type == "cuda"
    layout = auto.channels_last
    if precision == "auto":
        amp = torch.bfloat16 if auto.amp and bf16_is_native(device) else None
    else:
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if compile == STEP_GRAPH:
        return FastPaths(amp_dtype=amp, fused_optimizer=auto.fused, channels_last=layout,
                         step_graph=step_graph_available(device, amp) == "")
    if compile == "auto":
        wants, mode = auto.graphs_from is not None and steps >= auto.graphs_from, GRAPHS
    else:
        wants, mode = compile in ("on", "graphs"), GRAPHS if compile == "graphs" else "default"
    wants = wants and not compile_available(device)
    return FastPaths(amp_dtype=amp, fused_optimizer=auto.fused, compile=wants, channels_last=layout,
                     compile_mode=mode if cuda and wants else "default")


def bf16_is_native(device: torch.device) -> bool:
    """Does ``device`` compute in bf16 natively? Elsewhere bf16 is emulated: on a CPU without
    AVX512-BF16 or AMX, oneDNN made every member 2× (AVX-512) to 16× (AVX2) slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own probes of the CPU
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def step_graph_available(device: torch.device, amp_dtype: torch.dtype | None = None) -> str:
    """"" when whole training steps can be captured as CUDA graphs here, else why not (in words)."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if amp_dtype == torch.float16:
        return "fp16's gradient scaler decides on the host whether to step, which a graph cannot replay"
    return ""
