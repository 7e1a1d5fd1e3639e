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

# Measured defaults on CUDA, by member kind (docs/performance.md, "CUDA ablation", H100). At these
# sizes every member is bound by kernel launches: bf16 autocast (extra cast kernels) made each
# 11–25 % slower and torch.compile's default mode slower still, so both stay off; fused Adam and
# cudnn.benchmark helped. CUDA graphs (compile "reduce-overhead") made steps 1.3–3.4× faster but
# cost 3–18 s of compiling first, so "auto" uses them only for runs long enough to win that back:
# ``graphs_from`` is the measured break-even, in planned steps, rounded up.
# channels_last: measured on the H100 for the UNet only (it was always on then); off for the others
# until the ablation's "+ channels_last" column is measured on a GPU.
AUTO_CUDA = {
    "dcgan": {"amp": False, "graphs_from": 6000, "channels_last": False, "fused": True},
    "vae": {"amp": False, "graphs_from": 5100, "channels_last": False, "fused": True},
    "diffusion": {"amp": False, "graphs_from": 2200, "channels_last": True, "fused": True},
    "judge": {"amp": False, "graphs_from": 4900, "channels_last": False, "fused": True},
}
# On the CPU (docs/performance.md, CPU ablation) channels_last made each member's step faster, the
# fused optimizer's step was faster than torch's default CPU loop for every member, and bf16 autocast
# made every member 1.37–1.56× faster on a CPU with native bf16 (``bf16_is_native``; elsewhere fp32).
AUTO_CPU = {kind: {"amp": True, "graphs_from": None, "channels_last": True, "fused": True}
            for kind in ("dcgan", "vae", "diffusion", "judge")}
NO_AUTO = {"amp": False, "graphs_from": None, "channels_last": False, "fused": False}  # MPS, or not measured
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


def resolve(device: torch.device, kind: str, precision: str = "auto", compile: str = "auto",
            steps: int = 0) -> FastPaths:
    """The fast paths for one member of ``kind`` on ``device`` under the run's settings.

    ``steps``: the run's planned length, which decides whether compiling pays off under "auto".
    """
    cuda = device.type == "cuda"
    auto = (AUTO_CUDA if cuda else AUTO_CPU if device.type == "cpu" else {}).get(kind, NO_AUTO)
    layout = auto["channels_last"]
    if precision == "auto":
        amp = torch.bfloat16 if auto["amp"] and bf16_is_native(device) else None
    else:
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if compile == STEP_GRAPH:
        return FastPaths(amp_dtype=amp, fused_optimizer=auto["fused"], channels_last=layout,
                         step_graph=step_graph_available(device, amp) == "")
    if compile == "auto":
        wants, mode = auto["graphs_from"] is not None and steps >= auto["graphs_from"], GRAPHS
    else:
        wants, mode = compile in ("on", "graphs"), GRAPHS if compile == "graphs" else "default"
    wants = wants and not compile_available(device)
    return FastPaths(amp_dtype=amp, fused_optimizer=auto["fused"], compile=wants, channels_last=layout,
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
