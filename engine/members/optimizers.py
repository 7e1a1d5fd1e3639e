"""The members' optimizers: built from an ``OptimConfig``, checked and set to this machine's kernels
when a saved run's state comes back."""
from __future__ import annotations

import torch

from engine.config import OptimConfig


def check_optimizer_shapes(name: str, optimizer: torch.optim.Optimizer) -> None:
    """torch loads optimizer state of any shape; a mismatch would only fail at the next step."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                    raise ValueError(f"optimizer {name!r} state {key!r} has shape {tuple(value.shape)} "
                                     f"for a parameter of shape {tuple(param.shape)}")


def make_optimizer(config: OptimConfig, params, fused: bool = False,
                   capturable: bool = False) -> torch.optim.Optimizer:
    """``fused``: one kernel per step for all parameters (CUDA); otherwise torch's default (foreach).

    ``capturable``: Adam's step counts stay on the GPU so that a CUDA graph can replay the step (SGD
    keeps no count and needs nothing).
    """
    extra = {"fused": True} if fused else {}
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               **extra)
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay,
               **extra, **({"capturable": True} if capturable else {}))


def apply_fast_flags(optimizer: torch.optim.Optimizer, fused: bool, capturable: bool) -> None:
    """Loading a state dict also loads the saving run's kernel flags (a run saved on the CPU would
    come back unfused on a GPU): set this member's own, and put Adam's step counts where they go."""
    for group in optimizer.param_groups:
        group["fused"] = True if fused else None
        if fused:
            group["foreach"] = None
        if "capturable" in group:
            group["capturable"] = capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():  # moments in the parameter's own layout (channels_last or not)
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
            step = state.get("step")
            if isinstance(step, torch.Tensor):
                on_device = fused or group.get("capturable", False)
                state["step"] = step.to(param.device if on_device else "cpu", torch.float32)
