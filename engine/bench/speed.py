"""`bench speed`: images/s of the Chorus trainer vs a bare PyTorch loop vs a naive DataLoader loop
for every member (same model, batch and device, side by side in one process, repeated, medians),
sampling images/s per member and fusion, and peak memory. Prints a table and writes JSON."""
from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from engine.accel import GRAPHS, FastPaths
from engine.bench.launches import loop_per_step, per_step
from engine.bench.loops import bare_step, dataloader_batches, device_batches
from engine.config import FASHION_MNIST, RunConfig, TrainConfig
from engine.members.registry import run_config
from engine.data.dataset import to_signed_float
from engine.device import choose_device
from engine.errors import UserError
from engine.fusion.registry import FUSIONS, fusion
from engine.members.registry import MEMBERS
from engine.report import markdown_table
from engine.session import Session
from engine.training.events import MemberFailed

def config_for(kinds, steps: int, device: str) -> RunConfig:
    return run_config({
        "data": {"source": FASHION_MNIST, "size": 28, "channels": 1},
        # pace 1: one optimizer step per trainer step, the bare loops' unit
        "members": [{"kind": k, "pace": 1.0} for k in kinds],
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
    session.train(start_step + steps, [_report_failures])
    _sync(session.device)
    return steps * member.config.batch_size / (time.perf_counter() - started)


def _report_failures(event) -> None:
    if isinstance(event, MemberFailed):  # e.g. compile fell back to eager: the row would mislead
        print(f"  {event.member}: {event.message}", file=sys.stderr)


def time_loop(step, batches, steps: int, batch: int, device: torch.device) -> float:
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    _sync(device)
    return steps * batch / (time.perf_counter() - started)


# The ablation: each fast path added in turn to the Chorus trainer (label, paths, cudnn.benchmark);
# compiling and CUDA graphs are timed on CUDA only, and build on "+ fused Adam" in fp32 (on the H100
# bf16 made every member slower). torch.compile's default mode was measured too (docs/performance.md,
# first H100 run) and made every member slower; it stays selectable (--compile on).
ABLATION = (
    ("plain fp32", FastPaths(), False),
    ("+ cudnn.benchmark", FastPaths(), True),
    ("+ channels_last", FastPaths(channels_last=True), True),
    ("+ fused Adam", FastPaths(channels_last=True, fused_optimizer=True), True),
    ("+ bf16 autocast", FastPaths(amp_dtype=torch.bfloat16, channels_last=True, fused_optimizer=True), True),
    ("+ CUDA graphs", FastPaths(channels_last=True, fused_optimizer=True, compile=True, compile_mode=GRAPHS), True),
    ("+ whole-step graph", FastPaths(channels_last=True, fused_optimizer=True, step_graph=True), True),
)


class Timed:
    """One thing to time: ``run(steps)`` → images/s; ``benchmark`` is cudnn.benchmark while it runs."""

    def __init__(self, run: Callable[[int], float], benchmark: bool = True):
        self.run, self.benchmark = run, benchmark
        self.warmup_s = 0.0
        self.rates: list[float] = []

    def __call__(self, steps: int, record: bool = True) -> None:
        torch.backends.cudnn.benchmark = self.benchmark
        started = time.perf_counter()
        rate = self.run(steps)
        if record:
            self.rates.append(rate)
        else:
            self.warmup_s += time.perf_counter() - started


def repeat_steps(seconds_for: Callable[[int], float], steps: int, min_seconds: float, most: int) -> int:
    """Steps per repeat: at least ``steps``, and enough for ``min_seconds`` (timed once with
    ``seconds_for``) so that each ``Session.train`` call's fixed costs (log file, first rollback copy,
    final checkpoint) weigh no more than in a real run, but at most ``most`` steps (the checkpoint
    interval: a repeat never has less than a real run's checkpoint share)."""
    if min_seconds <= 0 or steps >= most:
        return steps
    seconds = seconds_for(steps)
    return max(steps, min(most, math.ceil(steps * min_seconds / max(seconds, 1e-9))))


def measure_member(kind: str, steps: int, warmup: int, repeats: int, device: str, folder: Path,
                   ablation: bool = False, min_repeat_s: float = 0.0) -> dict:
    config = config_for([kind], steps, device)
    session = Session.create(config, folder / kind)  # the run's own (auto) fast paths
    member = session.members[kind]
    plain = Session.create(config, folder / f"{kind}-plain", fast=FastPaths()).members[kind]
    batch = member.config.batch_size
    images = to_signed_float(session.dataset.images)
    labels = session.dataset.labels
    bare_data = device_batches(images, labels, batch)
    naive_data = dataloader_batches(images, labels, batch, session.device)
    plain_step = bare_step(plain)  # the plain fp32 loop
    timed = {
        "chorus": Timed(lambda n: time_chorus(session, n)),
        "bare": Timed(lambda n: time_loop(plain_step, bare_data, n, batch, session.device)),
        "dataloader": Timed(lambda n: time_loop(plain_step, naive_data, n, batch, session.device)),
    }
    fast_step = plain_step
    if member.fast != FastPaths():  # the bare loop with the trainer's own fast paths, for "adds nothing"
        fast_step = bare_step(member)
        timed["bare_same_paths"] = Timed(lambda n: time_loop(fast_step, bare_data, n, batch, session.device))
    if ablation:
        for label, paths, benchmark in ABLATION:
            if (paths.compile or paths.step_graph) and session.device.type != "cuda":
                continue  # compiling on a CPU takes minutes of C++ builds; CUDA graphs need CUDA
            if paths == member.fast and benchmark:  # the run's own defaults: the Chorus row itself
                timed[f"ablation {label}"] = timed["chorus"]
                continue
            variant = Session.create(config, folder / f"{kind}-{len(timed)}", fast=paths)
            timed[f"ablation {label}"] = Timed(lambda n, v=variant: time_chorus(v, n), benchmark)
    entries = list({id(entry): entry for entry in timed.values()}.values())
    for entry in entries:
        entry(warmup, record=False)
    torch.backends.cudnn.benchmark = timed["chorus"].benchmark  # timed apart: not a warm-up to report
    steps = repeat_steps(lambda n: n * batch / timed["chorus"].run(n), steps, min_repeat_s,
                         TrainConfig.from_dict({}).checkpoint_every)
    for _ in range(repeats):  # interleaved, so drift of the machine hits every variant alike
        for entry in entries:
            entry(steps)
    torch.backends.cudnn.benchmark = session.device.type == "cuda"
    medians = {k: statistics.median(v.rates) for k, v in timed.items()}
    same = medians.get("bare_same_paths", medians["bare"])
    # counted on the CPU only: there autograd's backward pass runs on this thread, where the count is
    ops = count_operations(session, lambda: fast_step(*next(bare_data))) if session.device.type == "cpu" else None
    return {"batch": batch, "steps_per_repeat": steps, "fast_paths": member.fast.describe(), "ops_per_step": ops,
            **{f"{k}_images_per_s": v for k, v in medians.items()},
            "chorus_vs_bare": medians["chorus"] / medians["bare"],
            "chorus_vs_bare_same_paths": medians["chorus"] / same,
            "chorus_vs_dataloader": medians["chorus"] / medians["dataloader"],
            "warmup_s": {k: round(v.warmup_s, 2) for k, v in timed.items()},
            "samples": {k: v.rates for k, v in timed.items()}}


def count_operations(session: Session, bare: Callable[[], None], steps: int = 10) -> dict[str, float]:
    """Operations per step (each one a kernel launch on a GPU; engine/bench/launches.py) of the
    Chorus trainer, of the member's own step (batch and ``train_step``) and of the bare loop."""
    member = next(iter(session.members.values()))
    chorus, host_reads = per_step(lambda n: session.train(session.step + n), steps)
    own, _ = loop_per_step(lambda: member.train_step(member.draw_batch(session.dataset, member.config.batch_size)),
                           steps)
    bare_ops, _ = loop_per_step(bare, steps)
    return {"chorus": chorus, "member_step": own, "trainer_adds": chorus - own, "bare_same_paths": bare_ops,
            "chorus_host_reads": host_reads}


def measure_sampling(device: str, folder: Path, n: int, repeats: int) -> dict:
    """Every registered member, and every strategy with the first row of its evaluation plan, or its
    quick parameters where that row needs more than one checkpoint's members (fitted weights, 1/FD
    weights); a strategy that needs more still (a soup's several checkpoints) is left out."""
    session = Session.create(config_for(list(MEMBERS), 1, device), folder / "sampling")
    session.train(1)
    rates = {}
    jobs = {f"member {name}": (lambda g, m=m: m.sample(n, g)) for name, m in session.generators().items()}
    for name, cls in FUSIONS.items():
        strategy = fusion(name)
        values = _runnable(strategy, session, [next(iter(cls.plan().values())), dict(cls.quick_params)])
        if values is None:
            continue
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


def _runnable(strategy, session: Session, choices: list[dict]) -> dict | None:
    """The first parameters in ``choices`` that the strategy can fuse this session with, validated."""
    for params in choices:
        try:
            values = strategy.validate(params)
            strategy.fuse(session.members, 1, torch.Generator(), **values)
            return values
        except UserError:
            continue
    return None


def main(args) -> int:
    quick = bool(args.quick)
    device = choose_device(args.device)
    cuda = device.type == "cuda"
    ablation = bool(getattr(args, "ablation", False))
    # On a GPU a repeat is 250 steps, the default checkpoint interval, so the trainer's one
    # checkpoint per repeat weighs what it weighs in a real run. On a CPU at least 40 steps and at
    # least a second (the judge's 40 steps take 0.3 s), at most those 250 (repeat_steps).
    steps, warmup, repeats = (5, 2, 2) if quick else ((250, 10, 3) if cuda else (40, 5, 3))
    min_repeat_s = 0.0 if quick else 1.0
    if getattr(args, "repeats", None) is not None:
        if args.repeats < 1:
            raise UserError(f"--repeats must be at least 1, got {args.repeats}")
        repeats = args.repeats
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        members = {}
        for kind in MEMBERS:
            print(f"  timing {kind}…", file=sys.stderr)
            members[kind] = measure_member(kind, steps, warmup, repeats, str(device), Path(tmp),
                                           ablation=ablation, min_repeat_s=min_repeat_s)
            print(f"  {kind}: " + ", ".join(f"{k} {v:.0f}" for k, v in members[kind].items()
                                            if k.endswith("_images_per_s")), file=sys.stderr)
        sampling = measure_sampling(str(device), Path(tmp), 64, repeats)
    peak = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_max_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
    print(markdown_table(["member", "batch", "Chorus fast paths", "Chorus img/s", "bare img/s",
                          "bare, same paths img/s", "DataLoader img/s", "Chorus ÷ bare",
                          "Chorus ÷ bare same paths", "Chorus ÷ DataLoader"],
                         [[k, str(m["batch"]), m["fast_paths"], f"{m['chorus_images_per_s']:.0f}",
                           f"{m['bare_images_per_s']:.0f}",
                           f"{m.get('bare_same_paths_images_per_s', m['bare_images_per_s']):.0f}",
                           f"{m['dataloader_images_per_s']:.0f}", f"{m['chorus_vs_bare']:.3f}",
                           f"{m['chorus_vs_bare_same_paths']:.3f}", f"{m['chorus_vs_dataloader']:.2f}"]
                          for k, m in members.items()]))
    if all(m["ops_per_step"] for m in members.values()):
        print()
        print(operations_table(members))
    if ablation:
        print()
        print(ablation_table(members))
        print()
        print(ablation_table(members, versus="dataloader"))
    print()
    print(markdown_table(["sampling 64 images", "seconds", "images/s"],
                         [[k, f"{v['seconds_for_n']:.3f}", f"{v['images_per_s']:.0f}"] for k, v in sampling.items()]))
    print(f"\npeak RSS {peak['rss_mib']:.0f} MiB" + (f", CUDA max allocated {peak['cuda_max_allocated_mib']:.0f} MiB"
                                                   if peak["cuda_max_allocated_mib"] is not None else ""))
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"steps per repeat {steps_per_repeat(members)} × {repeats} repeats (medians){' — quick' if quick else ''}")
    out = Path(args.out or "bench-speed.json")
    out.write_text(json.dumps({"device": str(device), "device_name": name, "torch": torch.__version__,
                               "quick": quick, "repeats": repeats, "members": members,
                               "sampling": sampling, "peak": peak}, indent=1), encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def steps_per_repeat(members: dict[str, dict]) -> str:
    """"40" when every member ran the same steps per repeat, else "dcgan 40, …, judge 150"."""
    counts = {kind: m["steps_per_repeat"] for kind, m in members.items()}
    if len(set(counts.values())) == 1:
        return str(next(iter(counts.values())))
    return ", ".join(f"{kind} {n}" for kind, n in counts.items())


def ablation_table(members: dict[str, dict], versus: str = "") -> str:
    """Images/s of the Chorus trainer as each fast path is added (× the plain fp32 trainer), and
    the seconds of warm-up each variant needed (compiling shows there); "—": not timed (GPU only).

    ``versus="dataloader"``: each variant ÷ the naive DataLoader loop instead."""
    labels = [label for label, _, _ in ABLATION]
    rows = []
    for kind, m in members.items():
        plain = m[f"ablation {labels[0]}_images_per_s"]
        cells = []
        for label in labels:
            rate = m.get(f"ablation {label}_images_per_s")
            if rate is None:
                cells.append("—")
            elif versus:
                cells.append(f"{rate / m[f'{versus}_images_per_s']:.2f}")
            else:
                cells.append(f"{rate:.0f} ({rate / plain:.2f}×, {m['warmup_s'][f'ablation {label}']:.0f} s)")
        rows.append([kind, *cells])
    title = "member" if not versus else f"÷ {versus} loop"
    return markdown_table([title, *labels], rows)


def operations_table(members: dict[str, dict]) -> str:
    """Operations per training step (a kernel launch each on a GPU) and host reads, counted."""
    rows = [[kind, *(f"{m['ops_per_step'][key]:.1f}" for key in
                     ("chorus", "member_step", "trainer_adds", "bare_same_paths", "chorus_host_reads"))]
            for kind, m in members.items()]
    return markdown_table(["operations per step", "Chorus trainer", "member's own step", "trainer adds",
                           "bare loop, same paths", "host reads (Chorus)"], rows)
