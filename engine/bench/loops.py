"""Reference training loops for `bench speed`: the same models, batch and device as a Chorus
member, written as a person would in bare PyTorch (data already a float tensor on the device),
and as a naive DataLoader loop (host tensors, shuffled, copied to the device every step).

The bare loop takes each step's losses from the member itself (``Member.losses``, the same code its
``train_step`` runs), so it cannot drift from the member's model and loss; around them it has only
what a person would write: zero_grad, backward, step, and the member's EMA update. With the member's
fast paths (autocast, fused optimizer, compiled networks) it shows what the trainer itself adds;
with a plain member it is the fp32 loop most people write."""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, TensorDataset

from engine.data.dataset import Batch
from engine.members.base import Member
from engine.members.optimizers import make_optimizer

StepFn = Callable[[torch.Tensor, torch.Tensor | None], None]


def bare_step(member: Member) -> StepFn:
    """One training step of ``member``'s model and loss, without any Chorus machinery."""
    fast = member.fast
    optims = {name: make_optimizer(member.config.optim, net.parameters(), fast.fused_optimizer)
              for name, net in member.trained_networks().items()}
    scaler = torch.amp.GradScaler(member.device.type) if fast.grad_scaler else None

    def update(name: str, loss: torch.Tensor) -> None:
        optims[name].zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optims[name].step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optims[name])
            scaler.update()

    def step(real: torch.Tensor, labels: torch.Tensor | None) -> None:
        for term in member.losses(Batch(real, labels)):
            update(term.optimizer, term.loss)
        member.after_step()
        member.advance()

    return step


def device_batches(images: torch.Tensor, labels: torch.Tensor | None, batch: int) -> Iterator:
    """Bare loop data: a float tensor already on the device, random indices each step."""
    while True:
        index = torch.randint(len(images), (batch,), device=images.device)
        yield images[index], (labels[index] if labels is not None else None)


def dataloader_batches(images: torch.Tensor, labels: torch.Tensor | None, batch: int,
                       device: torch.device) -> Iterator:
    """Naive loop data: host tensors through a shuffling DataLoader, copied every step."""
    host_labels = labels.cpu() if labels is not None else torch.zeros(len(images), dtype=torch.long)
    loader = DataLoader(TensorDataset(images.cpu(), host_labels), batch_size=batch, shuffle=True, drop_last=True)
    while True:
        for x, y in loader:
            yield x.to(device), (y.to(device) if labels is not None else None)
