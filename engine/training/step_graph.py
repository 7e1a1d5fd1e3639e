"""A member's whole training step captured once as a CUDA graph and replayed: one launch per step.

Chorus's members are small, so a step is bound by launching its few hundred kernels, not by their
math. torch.compile's CUDA graphs (compile "graphs") graph only the networks, leave the batch, the
loss, the optimizer and the EMA as eager launches, and compile for seconds first. Here the whole
step — the batch drawn from the device dataset, forward, backward, every optimizer, the EMA — is
recorded once, after a few eager warm-up steps (as CUDA graph capture asks), and then replayed. No
compiler is involved, so it works in the packaged app too.

What makes a step replayable (``FastPaths.step_graph``, engine/members/base.py):
- nothing it uses may come from the host per step: the EMA's warm-up reads a step count kept on the
  device, Adam keeps its step counts there (``capturable``), and losses are not read;
- its random draws use ``member.generator``, registered with the graph, so replay i draws what
  eager step i would, and the generator's state (saved in checkpoints) advances as usual;
- a graph holds fixed addresses: a new batch size (an out-of-memory halving) or replaced weights or
  optimizer state (a rollback, a load: ``member.state_version``) mean warming up and capturing again.

A recorder does the capturing: ``CudaGraphRecorder`` on a GPU; the tests emulate one on the CPU.
"""
from __future__ import annotations

from typing import Callable, Protocol, TypeVar

import torch

from engine.data.dataset import DeviceDataset
from engine.members.base import Member

T = TypeVar("T")
WARMUP_STEPS = 3  # eager steps before a capture: lazy state (optimizer moments, cuDNN plans) exists by then


class Recorder(Protocol):
    def warm_up(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` eagerly, as a step before a capture."""

    def capture(self, fn: Callable[[], T], generators: list[torch.Generator]) -> tuple[Callable[[], None], T]:
        """Record ``fn`` without running it; returns the replay and ``fn``'s outputs (rewritten by each replay)."""


class CudaGraphRecorder:
    """torch.cuda.CUDAGraph capture on a side stream, warm-up on the same stream."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def warm_up(self, fn: Callable[[], T]) -> T:
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.stream(self.stream):
            out = fn()
        current.wait_stream(self.stream)
        return out

    def capture(self, fn: Callable[[], T], generators: list[torch.Generator]) -> tuple[Callable[[], None], T]:
        graph = torch.cuda.CUDAGraph()
        for generator in generators:
            graph.register_generator_state(generator)
        entry = torch.cuda.current_stream(self.device)
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                out = fn()
        finally:
            torch.cuda.set_stream(entry)  # a capture that fails at its end leaves the capture stream current
        return graph.replay, out


class StepGraph:
    """Train ``member`` on batches of ``dataset`` by replaying one captured step."""

    def __init__(self, member: Member, dataset: DeviceDataset, recorder: Recorder):
        self.member, self.dataset, self.recorder = member, dataset, recorder
        self.captures = 0          # how many times a step was captured (tests, reports)
        self._replay: Callable[[], None] | None = None
        self._losses = torch.empty(0)
        self._keys: tuple[str, ...] = ()
        self._batch_size = 0
        self._version = -1
        self._warm = 0

    def step(self, batch_size: int) -> dict[str, torch.Tensor]:
        """One training step on a batch of ``batch_size``; returns its losses as 0-d tensors."""
        member = self.member
        if batch_size != self._batch_size or member.state_version != self._version:
            self.release()
            self._batch_size, self._version = batch_size, member.state_version
        if self._replay is None:
            if self._warm < WARMUP_STEPS:
                self._warm += 1
                return self.recorder.warm_up(self._eager_step)
            self._capture()
        self._replay()
        member.step += 1  # the device step count advanced inside the graph
        return dict(zip(self._keys, self._losses.clone().unbind()))  # the graph rewrites its outputs

    def release(self) -> None:
        """Drop the captured graph (and its memory); the next step warms up and captures again."""
        self._replay, self._losses, self._warm = None, torch.empty(0), 0

    def _eager_step(self) -> dict[str, torch.Tensor]:
        member = self.member
        return member.train_step(member.draw_batch(self.dataset, self._batch_size))

    def _capture(self) -> None:
        member = self.member
        for optimizer in member.optimizers.values():
            optimizer.zero_grad(set_to_none=True)  # so the graph allocates the gradients in its own memory
        step = member.step
        keys: list[str] = []

        def stacked() -> torch.Tensor:
            losses = self._eager_step()
            keys.extend(losses)
            return torch.stack([value.float() for value in losses.values()])

        try:
            replay, losses = self.recorder.capture(stacked, [member.generator])
        finally:
            member.step = step  # capturing ran the Python of a step, not the step
        self._replay, self._losses, self._keys = replay, losses, tuple(keys)
        self.captures += 1


class StepGraphs(dict):
    """The session's captured steps by member name (None: a member that trains eagerly), kept
    across ``Session.train`` calls; ``recorder`` captures them (a test may set one without a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.recorder: Recorder | None = None

    def for_member(self, member: Member, dataset: DeviceDataset) -> StepGraph | None:
        """The member's captured step, made on first use; None when it trains eagerly."""
        if not member.fast.step_graph:
            return None
        if member.name not in self:
            if self.recorder is None and member.device.type == "cuda":
                self.recorder = CudaGraphRecorder(member.device)
            self[member.name] = StepGraph(member, dataset, self.recorder) if self.recorder else None
        return self[member.name]

    def drop(self, member: Member) -> None:
        """Forget the member's graph after a failure; a CUDA recorder goes too (a capture that failed
        half-way may leave its stream unusable)."""
        graph = self.pop(member.name, None)
        if graph is not None:
            graph.release()
        if isinstance(self.recorder, CudaGraphRecorder):
            self.recorder = None
