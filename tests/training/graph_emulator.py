"""A CUDA graph emulated on the CPU, to test engine/training/step_graph.py without a GPU.

Capture runs the step once under a dispatch mode that records every aten op (forward, backward,
optimizer) with its arguments: tensors by identity, Python numbers as they were. It then puts back
every tensor that existed before and was written, and the generators' states, so that, like a CUDA
capture, it leaves no trace. Replay runs the recorded ops again on the recorded tensors and writes
fresh results into the recorded outputs. So, as with a real graph, host values are frozen at their
capture-time value (a step that reads a Python step count would go wrong here too), random ops draw
from their generator's current state (as graph-safe RNG does), and reading a tensor on the host
during capture fails (a CUDA capture cannot synchronise).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
HOST_READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.equal.default}
# ops that write arguments their schema does not mark as written: argument positions
UNMARKED_WRITES = {aten.native_batch_norm.default: (3, 4), aten._batch_norm_with_update.default: (3, 4)}


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _ptr(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


def _written(func, args: tuple, kwargs: dict) -> Iterator[torch.Tensor]:
    for index, argument in enumerate(func._schema.arguments):
        marked = argument.alias_info is not None and argument.alias_info.is_write
        if marked or index in UNMARKED_WRITES.get(func, ()):
            yield from _tensors(args[index] if index < len(args) else kwargs.get(argument.name))


class _Recording(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.created: set[int] = set()   # storages the capture allocated
        self.saved: dict[int, tuple[torch.UntypedStorage, torch.UntypedStorage]] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_READS:
            raise RuntimeError(f"{func} reads a tensor on the host during a graph capture")
        for tensor in _written(func, args, kwargs):
            ptr = _ptr(tensor)
            if ptr and ptr not in self.created and ptr not in self.saved:
                storage = tensor.untyped_storage()
                self.saved[ptr] = (storage, storage.clone())
        inputs = {_ptr(t) for t in _tensors((args, kwargs))}
        out = func(*args, **kwargs)
        self.created |= {_ptr(t) for t in _tensors(out)} - inputs
        self.ops.append((func, args, kwargs, out))
        return out

    def undo(self) -> None:
        for storage, copy in self.saved.values():
            storage.copy_(copy)

    @torch.no_grad()
    def replay(self) -> None:
        for func, args, kwargs, out in self.ops:
            fresh = func(*args, **kwargs)
            for old, new in zip(_tensors(out), _tensors(fresh)):
                if new.numel() and _ptr(new) != _ptr(old):
                    old.copy_(new)


class CpuGraphRecorder:
    """The ``Recorder`` of engine/training/step_graph.py, emulated on the CPU."""

    def __init__(self) -> None:
        self.recorded_ops = 0

    def warm_up(self, fn: Callable[[], Any]) -> Any:
        return fn()

    def capture(self, fn: Callable[[], Any], generators: list[torch.Generator]) -> tuple[Callable[[], None], Any]:
        states = [generator.get_state() for generator in generators]
        recording = _Recording()
        try:
            with recording:
                out = fn()
        finally:
            recording.undo()
            for generator, state in zip(generators, states):
                generator.set_state(state)
        self.recorded_ops = len(recording.ops)
        return recording.replay, out
