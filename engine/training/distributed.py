"""Data-parallel training over processes started by ``torchrun`` (one per GPU, or gloo on CPUs).

Every process holds every member, trains on its own shard of the data with its own noise, and
averages gradients before each optimizer step, so the weights stay identical on all ranks: the
global batch is ``processes × batch_size``. Only rank 0 writes (checkpoints, the loss log, previews,
progress); every rank reads the run folder to start or resume.

Gradients are averaged with one flat all-reduce per optimizer step instead of wrapping networks in
``DistributedDataParallel``: a member calls several networks per step in varying combinations (the
GAN's D three times, the VAE's encoder and decoder halves separately, G's loss also back-propagating
into D), which DDP's one-forward-one-backward reducer does not allow without ``no_sync`` juggling.
For networks of this size one bucket per step is what DDP's bucketing would produce anyway.

Decisions that must agree across ranks are taken on all-reduced values: losses (and so the
divergence checks) at log points, and stop requests, which therefore act at the next log point.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from engine.errors import UserError
from engine.members.base import Member


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """The process's place in the job, from the variables ``torchrun`` sets."""
    missing = [name for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
               if name not in os.environ]
    if missing:
        raise UserError("--distributed needs to be started by torchrun (missing "
                        f"{', '.join(missing)}), e.g. torchrun --nproc_per_node=2 main.py train … --distributed")
    return World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))


def start(world: World, device_preference: str) -> str:
    """Join the process group; returns the device this rank trains on ("cuda:N" or "cpu")."""
    use_cuda = device_preference in ("auto", "cuda") and torch.cuda.is_available()
    if device_preference == "cuda" and not use_cuda:
        raise UserError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if use_cuda:
        if world.local_rank >= torch.cuda.device_count():
            raise UserError(f"rank {world.rank} wants GPU {world.local_rank} but this node has "
                            f"{torch.cuda.device_count()}; start at most that many processes per node")
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=10))
    return f"cuda:{world.local_rank}" if use_cuda else "cpu"


def stop() -> None:
    """Leave the process group, rank 0 last: the other ranks close their connections first and say so
    through the job's store, so none is still tearing down gloo when rank 0's side goes away (a rank
    aborted with "terminate called without an active exception" in about 1 run in 20 under load)."""
    if not dist.is_initialized():
        return
    try:
        store, rank, size = dist.distributed_c10d._get_default_store(), dist.get_rank(), dist.get_world_size()
    except (AttributeError, RuntimeError, ValueError):  # no store to hand: plain teardown
        dist.destroy_process_group()
        return
    if rank != 0:
        dist.destroy_process_group()
        store.set(f"chorus/left/{rank}", "1")
        return
    try:
        store.wait([f"chorus/left/{r}" for r in range(1, size)], timedelta(seconds=60))
    except (RuntimeError, dist.DistStoreError):  # a rank that never left: do not hang the job on it
        pass
    dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def attach(member: Member, world: World, seed: int) -> None:
    """Make ``member`` data-parallel: same weights as rank 0, own noise, averaged gradients."""
    for net in member.networks().values():
        for tensor in list(net.parameters()) + list(net.buffers()):
            dist.broadcast(tensor.data, src=0)
    reseed(member, world, seed)
    member.grad_sync = lambda optimizer: average_gradients(optimizer, world.size)


def reseed(member: Member, world: World, seed: int) -> None:
    """Ranks other than 0 draw their own batches and noise (rank 0 keeps the run's generator state)."""
    if not world.is_main:
        member.generator.manual_seed((seed * 7919 + member.step * 104_729 + world.rank) % 2**63)


def average_gradients(optimizer: torch.optim.Optimizer, world_size: int) -> None:
    """One flat all-reduce of the optimizer's gradients (a missing gradient counts as zeros)."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world_size)
    for grad, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(synced)


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of a float tensor over all ranks."""
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on one (e.g. a stop request)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
