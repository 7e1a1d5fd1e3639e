"""`bench sizing`: what "auto" widths cost (engine/members/sizing.py). For each generator member, the
seconds of a training step at 32 px (its measured default width), at 64 px with the width "auto"
settles to, and at 64 px with the 32-px width, timed side by side (interleaved repeats, medians) on
the member's own fast paths and batch, with the counted floating-point operations beside them.
Prints a Markdown table with the ratios to the 32-px step and writes JSON."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from engine.config import DataConfig, MemberConfig
from engine.data.dataset import Batch
from engine.device import choose_device
from engine.members.registry import MEMBERS
from engine.members.sizing import REFERENCE_SIZE, _fixed, step_flops
from engine.report import markdown_table

LARGE = 64
CHANNELS = 4  # the RGBA folders the sizing is for


def variants(cls) -> dict[str, tuple[int, dict]]:
    """label → (size, settled parameters)."""
    defaults = {p.name: p.default for p in cls.params}
    settle = lambda size: cls.settle_params(defaults, 1_000, DataConfig(source="bench", size=size, channels=CHANNELS))  # noqa: E731
    large = settle(LARGE)
    return {f"{REFERENCE_SIZE} px": (REFERENCE_SIZE, settle(REFERENCE_SIZE)),
            f"{LARGE} px auto": (LARGE, large),
            f"{LARGE} px, {REFERENCE_SIZE}-px width": (LARGE, {**large, **cls.sized})}


def build(cls, size: int, params: dict, device: torch.device):
    config = MemberConfig(kind=cls.kind, optim=cls.default_optim, batch_size=cls.default_batch_size, params=params)
    return cls(config, (CHANNELS, size, size), 0, device, 0, cls.fast_paths(device))


def time_steps(member, steps: int, device: torch.device) -> float:
    images = torch.rand(member.config.batch_size, *member.image_shape, device=device) * 2 - 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        member.train_step(Batch(images, None))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


def main(args) -> int:
    device = choose_device(args.device)
    steps, warmup, repeats = (2, 1, 1) if args.quick else (10, 3, args.repeats or 3)
    rows, out = [], {}
    for kind, cls in MEMBERS.items():
        if not cls.sized or not cls.can_sample:
            continue
        print(f"  timing {kind}…", file=sys.stderr)
        members = {label: (build(cls, size, params, device), size, params)
                   for label, (size, params) in variants(cls).items()}
        seconds: dict[str, list[float]] = {label: [] for label in members}
        for label, (member, _, _) in members.items():
            time_steps(member, warmup, device)
        for _ in range(repeats):  # interleaved: a slow spell of the machine hits every variant alike
            for label, (member, _, _) in members.items():
                seconds[label].append(time_steps(member, steps, device))
        reference = statistics.median(seconds[f"{REFERENCE_SIZE} px"])
        for label, (member, size, params) in members.items():
            median = statistics.median(seconds[label])
            flops = step_flops(cls, _fixed(params), (), size, CHANNELS)
            out.setdefault(kind, {})[label] = {"width": member.p["width"], "seconds_per_step": median,
                                               "ratio": median / reference, "probe_flops": flops}
            rows.append([kind, label, str(member.p["width"]), f"{median:.3f}", f"{median / reference:.2f}×",
                         f"{flops / 1e6:,.0f}"])
    print(markdown_table(["member", "images", "width", "s / step", "÷ 32 px", "MFLOP / 2-image step"], rows))
    path = Path(args.out or "bench-sizing.json")
    path.write_text(json.dumps({"device": str(device), "channels": CHANNELS, "steps": steps, "repeats": repeats,
                                "members": out}, indent=1), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)
    return 0
