"""Member health: a diverging member is rolled back, one out of memory gets a smaller batch, and a
member that keeps failing is paused. Whatever happens to one member, the others keep training.

Rollback target: an in-memory copy of the member's weights and optimizer state, taken at a log
point (at most every ``snapshot_every`` steps) after its losses since the previous log point were
seen finite and its weights checked finite. The copy stays on the member's device (a clone, no
host transfer). Copies are also spaced in time so that they cost at most SNAPSHOT_BUDGET of the
training time, however fast a member's steps are (a tiny member on a GPU steps in a millisecond).

A rollback keeps the member's step count and random generator, so it stays in step with the
others and does not replay the batches that diverged; its learning rate is halved (and, being in
the optimizer's state, stays halved in the checkpoints).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from engine.device import release_cached_memory
from engine.members.base import Member
from engine.training.events import Event, MemberFailed

MAX_ROLLBACKS = 3        # the next divergence after this many pauses the member for the run
LR_FACTOR = 0.5          # learning rate multiplier at each rollback
MIN_BATCH = 4            # out-of-memory halving stops here (or at the configured size if smaller)
SNAPSHOT_EVERY = 50      # steps between rollback copies (taken at the first log point after)
SNAPSHOT_BUDGET = 0.01   # largest share of the training time that taking copies may use

ROLLED_BACK, SMALLER_BATCH, PAUSED = "rolled back", "smaller batch", "paused"


@dataclass
class _State:
    batch_size: int
    snapshot: dict[str, Any] | None = None
    snapshot_step: int = -1
    next_snapshot_time: float = 0.0
    rollbacks: int = 0
    paused: bool = False


class Health:
    def __init__(self, members: list[Member], emit: Callable[[Event], None], snapshot_every: int | None = None):
        self.emit = emit
        self.snapshot_every = snapshot_every or SNAPSHOT_EVERY
        self._state = {m.name: _State(m.config.batch_size) for m in members}

    def batch_size(self, member: Member) -> int:
        return self._state[member.name].batch_size

    def paused(self, member: Member) -> bool:
        return self._state[member.name].paused

    # -- snapshots -------------------------------------------------------------------------------
    def start(self, member: Member, step: int) -> None:
        """The first rollback copy; a member whose weights are already not finite is paused."""
        if not self.snapshot(member, step):
            self._pause(member, step, "its weights are not finite (NaN or Inf) at the start")

    def snapshot_due(self, member: Member, step: int) -> bool:
        state = self._state[member.name]
        return step - state.snapshot_step >= self.snapshot_every and time.perf_counter() >= state.next_snapshot_time

    def snapshot(self, member: Member, step: int) -> bool:
        """Copy the member's state if its weights are finite; False (and no copy) if they are not."""
        started = time.perf_counter()
        if not weights_finite(member):
            return False
        state = self._state[member.name]
        state.snapshot = {
            "nets": {name: {k: v.detach().clone() for k, v in net.state_dict().items()}
                     for name, net in member.networks().items()},
            "optims": {name: copy.deepcopy(opt.state_dict()) for name, opt in member.optimizers.items()},
        }
        state.snapshot_step = step
        now = time.perf_counter()
        state.next_snapshot_time = now + (now - started) / SNAPSHOT_BUDGET
        return True

    # -- failures --------------------------------------------------------------------------------
    def diverged(self, member: Member, step: int, what: str) -> None:
        """A non-finite loss (or weights): roll back with a lower learning rate, or pause."""
        state = self._state[member.name]
        if state.snapshot is None:
            self._pause(member, step, f"{what}, and there is no earlier good state to return to")
            return
        if state.rollbacks >= MAX_ROLLBACKS:
            self._restore(member, state.snapshot, 1.0)
            self._pause(member, step, f"{what} again after {state.rollbacks} rollbacks; "
                                      f"its weights are back at step {state.snapshot_step}")
            return
        state.rollbacks += 1
        lr = self._restore(member, state.snapshot, LR_FACTOR)
        self.emit(MemberFailed(member.name, step, f"{what}; rolled back to its state at step "
                               f"{state.snapshot_step} with learning rate {lr:.3g}", ROLLED_BACK))

    def out_of_memory(self, member: Member, step: int, exc: BaseException) -> bool:
        """Halve the member's batch; True to retry the step, False when it is paused instead."""
        state = self._state[member.name]
        _drop_gradients(member)
        release_cached_memory(member.device)
        smaller = state.batch_size // 2
        if smaller < min(MIN_BATCH, state.batch_size):
            self._pause(member, step, f"out of memory even at batch size {state.batch_size}")
            return False
        self.emit(MemberFailed(member.name, step, f"out of memory at batch size {state.batch_size}; "
                               f"retrying with {smaller}", SMALLER_BATCH))
        state.batch_size = smaller
        return True

    def _pause(self, member: Member, step: int, why: str) -> None:
        self._state[member.name].paused = True
        self.emit(MemberFailed(member.name, step, f"{why}; paused for the rest of this run (the others go on; "
                               "resume the run to try it again)", PAUSED))

    @staticmethod
    def _restore(member: Member, snapshot: dict[str, Any], lr_factor: float) -> float:
        """Load the copy back (the copy itself stays untouched) and scale the learning rates."""
        rates = {name: [group["lr"] for group in optimizer.param_groups]
                 for name, optimizer in member.optimizers.items()}
        member.load_weights(snapshot["nets"], copy.deepcopy(snapshot["optims"]))  # a captured step goes stale
        lr = 0.0
        for name, optimizer in member.optimizers.items():
            for group, rate in zip(optimizer.param_groups, rates[name]):
                group["lr"] = lr = rate * lr_factor
        _drop_gradients(member)
        return lr


def weights_finite(member: Member) -> bool:
    """One device sync: are all floating-point weights and buffers of the member finite?

    The norm over all of them is NaN/Inf exactly when one value is (weights are nowhere near the
    1e19 where a square would overflow); torch computes it with fused multi-tensor kernels."""
    tensors = [t.detach() for net in member.networks().values()
               for t in net.state_dict().values() if t.is_floating_point()]
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(tensors))) if tensors else True


def _drop_gradients(member: Member) -> None:
    for net in member.networks().values():
        for parameter in net.parameters():
            parameter.grad = None
