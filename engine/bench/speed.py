"""`bench speed`: images/s of the Chorus trainer vs a bare PyTorch loop vs a naive DataLoader loop
for every member (same model, batch and device, side by side in one process, repeated, medians),
sampling images/s per member and fusion, and peak memory. Prints a table and writes JSON."""
from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from engine.bench.loops import bare_step, dataloader_batches, device_batches
from engine.config import RunConfig
from engine.data.dataset import to_signed_float
from engine.device import choose_device
from engine.fusion.registry import fusion
from engine.report import markdown_table
from engine.session import Session

KINDS = ("dcgan", "vae", "diffusion", "judge")


def config_for(kinds, steps: int, device: str) -> RunConfig:
    return RunConfig.from_dict({
        "data": {"source": "fashion-mnist", "size": 28, "channels": 1},
        "members": [{"kind": k} for k in kinds],
        "train": {"steps": steps, "seed": 0, "device": device, "log_every": 10,
                  "checkpoint_every": 10**9, "preview_every": 10**9},
    })


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_chorus(session: Session, steps: int) -> float:
    """Images/s of the real trainer path (batches, steps, logging, the final checkpoint)."""
    member = next(iter(session.members.values()))
    start_step = session.step
    _sync(session.device)
    started = time.perf_counter()
    session.train(start_step + steps)
    _sync(session.device)
    return steps * member.config.batch_size / (time.perf_counter() - started)


def time_loop(step, batches, steps: int, batch: int, device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    _sync(device)
    return steps * batch / (time.perf_counter() - started)


def measure_member(kind: str, steps: int, warmup: int, repeats: int, device: str, folder: Path) -> dict:
    session = Session.create(config_for([kind], steps, device), folder / kind)
    member = session.members[kind]
    batch = member.config.batch_size
    images = to_signed_float(session.dataset.images)
    labels = session.dataset.labels
    step = bare_step(member)
    bare_data = device_batches(images, labels, batch)
    naive_data = dataloader_batches(images, labels, batch, session.device)
    time_loop(step, bare_data, warmup, batch, session.device)
    time_loop(step, naive_data, warmup, batch, session.device)
    session.train(warmup)
    results = {"chorus": [], "bare": [], "dataloader": []}
    for _ in range(repeats):  # interleaved, so drift of the machine hits all three alike
        results["chorus"].append(time_chorus(session, steps))
        results["bare"].append(time_loop(step, bare_data, steps, batch, session.device))
        results["dataloader"].append(time_loop(step, naive_data, steps, batch, session.device))
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {"batch": batch, **{f"{k}_images_per_s": v for k, v in medians.items()},
            "chorus_vs_bare": medians["chorus"] / medians["bare"],
            "chorus_vs_dataloader": medians["chorus"] / medians["dataloader"], "samples": results}


def measure_sampling(device: str, folder: Path, n: int, repeats: int) -> dict:
    session = Session.create(config_for(KINDS, 1, device), folder / "sampling")
    session.train(1)
    rates = {}
    jobs = {f"member {name}": (lambda g, m=m: m.sample(n, g)) for name, m in session.generators().items()}
    for name, params in (("average", {}), ("mixture", {}), ("vote", {"k": 4}), ("refine", {})):
        strategy = fusion(name)
        values = strategy.validate(params)
        jobs[f"fusion {name}"] = lambda g, s=strategy, v=values: s.fuse(session.members, n, g, **v)
    for label, job in jobs.items():
        seconds = []
        for r in range(repeats):
            _sync(session.device)
            started = time.perf_counter()
            job(torch.Generator().manual_seed(r))
            _sync(session.device)
            seconds.append(time.perf_counter() - started)
        rates[label] = {"seconds_for_n": statistics.median(seconds), "images_per_s": n / statistics.median(seconds)}
    return rates


def main(args) -> int:
    quick = bool(args.quick)
    device = choose_device(args.device)
    steps, warmup, repeats = (5, 2, 2) if quick else (40, 5, 3)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        members = {}
        for kind in KINDS:
            print(f"  timing {kind}…", file=sys.stderr)
            members[kind] = measure_member(kind, steps, warmup, repeats, str(device), Path(tmp))
        sampling = measure_sampling(str(device), Path(tmp), 64, repeats)
    peak = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None}
    rows = [[k, str(m["batch"]), f"{m['chorus_images_per_s']:.0f}", f"{m['bare_images_per_s']:.0f}",
             f"{m['dataloader_images_per_s']:.0f}", f"{m['chorus_vs_bare']:.3f}", f"{m['chorus_vs_dataloader']:.2f}"]
            for k, m in members.items()]
    print(markdown_table(["member", "batch", "Chorus img/s", "bare img/s", "DataLoader img/s",
                          "Chorus ÷ bare", "Chorus ÷ DataLoader"], rows))
    print()
    print(markdown_table(["sampling 64 images", "seconds", "images/s"],
                         [[k, f"{v['seconds_for_n']:.3f}", f"{v['images_per_s']:.0f}"] for k, v in sampling.items()]))
    print(f"\npeak RSS {peak['rss_mib']:.0f} MiB" + (f", CUDA max allocated {peak['cuda_max_allocated_mib']:.0f} MiB"
                                                   if peak["cuda_max_allocated_mib"] is not None else ""))
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"steps {steps} × {repeats} repeats (medians){' — quick' if quick else ''}")
    out = Path(args.out or "bench-speed.json")
    out.write_text(json.dumps({"device": str(device), "quick": quick, "members": members, "sampling": sampling,
                               "peak": peak}, indent=1), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0
