"""`bench augment`: does adaptive augmentation keep the DCGAN from collapsing on a small folder?
(issue 17; docs/quality.md § Small folders)

A seeded, class-stratified subset of the emoji benchmark (``--subset``, default 500 training
images) is laid out beside it as links; the DCGAN alone trains on it at the default length with
``augment=adaptive`` and with ``augment=off``, for ``--seeds`` seeds each (interleaved: adaptive and
off for seed 0, then seed 1, …), and each run is evaluated (FD, recall, diversity ratio) against
the images of the subset held out from training: 40 % of it (500 to train on, about 330 held
out), so the reference is not a few dozen pictures. Prints a Markdown table and writes JSON.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

from engine.bench.emoji import require_emoji_folder
from engine.bench.quality import EMOJI_SHAPE, FOLDER_N, FULL, QUICK
from engine.evaluation import evaluate
from engine.members.registry import run_config
from engine.metrics.features import JudgeRecipe
from engine.session import Session
from engine.training.diagnostics import REAL_IMAGES, PreviewCheck

SUBSET = 500
SEEDS = 3
HOLDOUT = 0.4  # of the subset: 500 training images and 333 held out
SETTINGS = ("adaptive", "off")


def subset_folder(source: Path, training: int, holdout: float = HOLDOUT) -> Path:
    """A folder of links to a class-stratified share of ``source``'s pictures, enough for ``training``
    images once ``holdout`` of them is set aside; each class keeps its share, the pictures of a
    class ranked by a hash of their names (the same subset on every machine)."""
    wanted = round(training / (1 - holdout))
    classes = {d.name: sorted(p.name for p in d.iterdir() if p.suffix.lower() == ".png")
               for d in sorted(source.iterdir()) if d.is_dir()}
    total = sum(map(len, classes.values()))
    if wanted > total:
        raise SystemExit(f"--subset {training} needs {wanted} pictures; {source} has {total}")
    folder = source.with_name(f"{source.name}-subset{training}")
    stamp = folder / "SUBSET.txt"
    if stamp.is_file() and stamp.read_text() == f"{wanted}\n":
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    rank = lambda name: hashlib.blake2b(name.encode(), digest_size=8).hexdigest()  # noqa: E731
    for cls, names in classes.items():
        (folder / cls).mkdir(parents=True)
        for name in sorted(names, key=rank)[:max(1, round(wanted * len(names) / total))]:
            target = folder / cls / name
            try:
                os.symlink(source / cls / name, target)
            except OSError:  # no links on this file system
                shutil.copyfile(source / cls / name, target)
    stamp.write_text(f"{wanted}\n")
    return folder


def main(args) -> int:
    budget = QUICK if args.quick else FULL
    training = args.subset or SUBSET
    seeds = args.seeds or (1 if args.quick else SEEDS)
    folder = subset_folder(require_emoji_folder(), training)
    n = budget.n if args.quick else FOLDER_N
    rows = []
    started = time.perf_counter()
    first = getattr(args, "first_seed", None) or 0
    for seed in range(first, first + seeds):
        for setting in SETTINGS:
            config = run_config({
                "data": {"source": str(folder), **EMOJI_SHAPE, "holdout": HOLDOUT},
                "members": [{"kind": "dcgan", "pace": 1.0, "params": {"augment": setting}}],
                "train": {"steps": budget.steps, "seed": seed, "device": args.device, "log_every": 50,
                          "checkpoint_every": budget.steps, "keep_checkpoints": 1, "preview_every": budget.steps}})
            out = Path("runs") / f"bench-augment-{time.strftime('%Y%m%d-%H%M%S')}-{setting}-seed{seed}"
            session = Session.create(config, out, args.device)
            if not rows:
                print(session.data.report, file=sys.stderr)
            print(f"seed {seed}, augment {setting}: training {budget.steps} steps into {out}", file=sys.stderr)
            clock = time.perf_counter()
            session.train(budget.steps)
            seconds = time.perf_counter() - clock
            report = evaluate(session, n, fusions={}, judge_recipe=JudgeRecipe(steps=budget.judge_steps))
            row = report.members["dcgan"]
            check = PreviewCheck(session.dataset.batch(REAL_IMAGES, torch.Generator(device=session.device).manual_seed(0)).images)
            diversity, _ = check.ratios(session.member("dcgan").sample(REAL_IMAGES, torch.Generator(device=session.device).manual_seed(1)))
            rows.append({"seed": seed, "augment": setting, "fd": row.fd, "recall": row.recall,
                         "precision": row.precision, "diversity": diversity, "train_seconds": seconds,
                         "training_images": len(session.data.images), "reference": report.reference,
                         "floor": report.floor_fd})
            print(f"  FD {row.fd:.1f}, recall {row.recall:.3f}, diversity {diversity:.2f} ({seconds:.0f} s)",
                  file=sys.stderr)
    print(table(rows))
    out_json = Path(args.out or "bench-augment.json")
    out_json.write_text(json.dumps({"rows": rows, "subset": training, "steps": budget.steps, "n": n,
                                    "total_seconds": time.perf_counter() - started}, indent=1), encoding="utf-8")
    print(f"wrote {out_json}", file=sys.stderr)
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| augment | seed | FD | recall | diversity |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['augment']} | {row['seed']} | {row['fd']:.1f} | {row['recall']:.3f} | {row['diversity']:.2f} |")
    for setting in SETTINGS:
        mine = [r for r in rows if r["augment"] == setting]
        if mine:
            lines.append(f"| **{setting}, median** | {len(mine)} seeds | {statistics.median(r['fd'] for r in mine):.1f} | "
                         f"{statistics.median(r['recall'] for r in mine):.3f} | "
                         f"{statistics.median(r['diversity'] for r in mine):.2f} |")
    return "\n".join(lines)
