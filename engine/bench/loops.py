"""Reference training loops for `bench speed`: the same models, batch and device as a Chorus
member, written as a person would in bare PyTorch (data already a float tensor on the device),
and as a naive DataLoader loop (host tensors, shuffled, copied to the device every step).

``fast`` gives the bare loop the same autocast and fused optimizer as a Chorus member (and it
runs the member's own networks, compiled if the member's are), to show what the trainer itself
adds; with the default it is the plain fp32 loop most people write."""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from engine.accel import FastPaths
from engine.members.base import Member, ema_beta, make_optimizer, update_ema

StepFn = Callable[[torch.Tensor, torch.Tensor | None], None]


def bare_step(member: Member, fast: FastPaths = FastPaths()) -> StepFn:
    """One training step of ``member``'s model and loss, without any Chorus machinery."""
    kind, device = member.kind, member.device
    optims = {name: make_optimizer(member.config.optim, net.parameters(), fast.fused_optimizer)
              for name, net in member.trained_networks().items()}
    scaler = torch.amp.GradScaler(device.type) if fast.grad_scaler else None
    p = member.p
    amp = lambda: fast.autocast(device)  # noqa: E731

    def update(name, loss):
        optims[name].zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optims[name].step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optims[name])
            scaler.update()

    if kind == "dcgan":
        G, D, ema = member.G, member.D, member.G_ema
        step_count = [0]

        def step(real, labels):
            z = torch.randn(real.shape[0], p["latent"], device=device)
            with amp():
                fake = G(z)
                loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
            update("D", loss_d)
            with amp():
                loss_g = F.softplus(-D(fake)).mean()
            update("G", loss_g)
            update_ema(ema, G, ema_beta(step_count[0], p["ema_decay"]))
            step_count[0] += 1
        return step

    if kind == "vae":
        enc, dec = member.encoder, member.decoder

        def step(real, labels):
            with amp():
                mu, logvar = enc(real).chunk(2, dim=1)
                z = mu + torch.exp(0.5 * logvar.clamp(-20, 10)) * torch.randn_like(mu)
                recon = F.binary_cross_entropy_with_logits(dec(z), (real + 1) / 2, reduction="none").flatten(1).sum(1)
                kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
                loss = (recon.float() + p["beta"] * kl.float()).mean()
            update("vae", loss)
        return step

    if kind == "diffusion":
        net, ema = member.net, member.ema
        step_count = [0]

        def step(real, labels):
            noise = torch.randn_like(real)
            t = torch.sigmoid(torch.randn(real.shape[0], device=device))
            xt = (1 - t)[:, None, None, None] * real + t[:, None, None, None] * noise
            with amp():
                loss = F.mse_loss(net(xt, t).float(), noise - real)
            update("unet", loss)
            update_ema(ema, net, ema_beta(step_count[0], p["ema_decay"]))
            step_count[0] += 1
        return step

    if kind == "judge":
        net = member.net

        def step(real, labels):
            with amp():
                loss = F.cross_entropy(net(real), labels)
            update("judge", loss)
        return step
    raise ValueError(f"no bare loop for {kind}")


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
