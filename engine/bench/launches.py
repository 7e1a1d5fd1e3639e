"""Operations per training step, counted rather than timed.

At Chorus's default sizes every member is bound by kernel launches on a GPU (docs/performance.md):
a step costs about what its number of device operations costs to launch. Counting them is exact and
the same on any machine, so the benchmark (and a CI test) can show what the trainer adds to a
member's step, and what the member's step costs next to the bare loop, without a GPU's timings.

Counted: every aten operation that does work (a kernel on a GPU). Not counted: views and tensor
metadata operations, which launch nothing. Reads of a device value on the host are counted apart
(``host_reads``): on a GPU each one waits for the device. Counts are taken on the CPU, where autograd
runs the backward pass on the calling thread (the counter sees only its own thread); the operations
are the same on a GPU, except that torch's CPU Adam without ``fused`` loops over tensors.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable

from torch.utils._python_dispatch import TorchDispatchMode

# operations that allocate or relabel memory without running a kernel
_NO_KERNEL = {"aten.detach.default", "aten.empty.memory_format", "aten.empty_strided.default",
              "aten.new_empty.default", "aten.new_empty_strided.default", "aten.lift_fresh.default",
              "aten.set_.source_Storage", "aten.set_.source_Storage_storage_offset"}
_HOST_READ = "aten._local_scalar_dense.default"


class OpCounter(TorchDispatchMode):
    """While active (``with OpCounter() as ops:``), counts the operations dispatched on this thread."""

    def __init__(self):
        super().__init__()
        self.kernels: Counter[str] = Counter()
        self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name == _HOST_READ:
            self.host_reads += 1
        elif not func.is_view and name not in _NO_KERNEL and not name.startswith("profiler."):
            self.kernels[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.kernels.values())


def count(run: Callable[[], object]) -> OpCounter:
    with OpCounter() as ops:
        run()
    return ops


def per_step(run: Callable[[int], object], steps: int) -> tuple[float, float]:
    """(operations, host reads) per step of ``run(n)``, which does n steps plus a fixed cost (the
    trainer's final flush and checkpoint): counted for ``steps`` and for ``2 · steps``, differenced."""
    once, twice = count(lambda: run(steps)), count(lambda: run(2 * steps))
    return (twice.total - once.total) / steps, (twice.host_reads - once.host_reads) / steps


def loop_per_step(step: Callable[[], object], steps: int) -> tuple[float, float]:
    """(operations, host reads) per call of ``step``, after one uncounted call (an optimizer makes
    its state on its first step)."""
    step()
    ops = count(lambda: [step() for _ in range(steps)])
    return ops.total / steps, ops.host_reads / steps
