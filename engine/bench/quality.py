"""`bench quality`: does fusion beat the best single member? (docs/architecture.md, "Measuring quality")

Fashion-MNIST (the reference: its 10,000 test images, n = 10,000 samples), or ``--data emoji`` (the
public artist-style folder of engine/bench/emoji.py; 32 px RGBA by default; the reference: its
held-out images, n = 2,000) or any folder; every member trains its pace of the ensemble's steps
(engine/training/pace.py); the evaluation judge (fixed seed, cached) supplies the features. Prints a
Markdown table and writes JSON. ``--quick`` only checks that the pipeline works.
"""
from __future__ import annotations

import json
import platform
import sys
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.bench import equal_compute
from engine.config import FASHION_MNIST, RunConfig
from engine.errors import UserError
from engine.members.registry import MEMBERS, run_config
from engine.evaluation import EvalReport, evaluate, fusion_plan
from engine.metrics.features import JudgeRecipe
from engine.report import eval_table, markdown_table
from engine.session import Session


@dataclass(frozen=True)
class Budget:
    steps: int
    n: int
    judge_steps: int
    fit_samples: int
    max_sample_steps: int = 200  # the longest Euler path the equal-sampling-time diffusion row takes
    tiny: bool = False  # members at their ``tiny_params`` (a pipeline check, not a score)


FULL = Budget(steps=1500, n=10_000, judge_steps=1500, fit_samples=2000)
QUICK = Budget(steps=20, n=200, judge_steps=60, fit_samples=100, max_sample_steps=40, tiny=True)
FOLDER_N = 2000  # samples per row on a folder: its held-out reference is a few hundred images
EMOJI = "emoji"
EMOJI_SHAPE = {"size": 32, "channels": 4}  # the artist-folder section of docs/quality.md


def bench_data(args) -> dict:
    """The [data] table: Fashion-MNIST at 28 px grey, the emoji benchmark at 32 px RGBA, or a folder
    at "auto"; --size and --channels override."""
    source = getattr(args, "data", None) or FASHION_MNIST
    if source == FASHION_MNIST:
        data = {"source": FASHION_MNIST, "size": 28, "channels": 1}
    elif source == EMOJI:
        from engine.bench.emoji import require_emoji_folder

        data = {"source": str(require_emoji_folder()), **EMOJI_SHAPE}
    else:
        data = {"source": source}
    for key in ("size", "channels"):
        if getattr(args, key, None) is not None:
            data[key] = getattr(args, key)
    return data


def bench_config(budget: Budget, device: str, data: dict | None = None) -> RunConfig:
    return run_config({
        "data": data or {"source": FASHION_MNIST, "size": 28, "channels": 1},
        "members": [{"kind": k, **({"params": dict(cls.tiny_params)} if budget.tiny else {})}
                    for k, cls in MEMBERS.items()],
        "train": {"steps": budget.steps, "seed": 0, "device": device, "log_every": 50,
                  "checkpoint_every": max(1, budget.steps // 4), "keep_checkpoints": 4,
                  "preview_every": max(1, budget.steps)},
    })


def write_result(path: Path, summary: dict, report: EvalReport) -> None:
    path.write_text(json.dumps({"summary": summary, "report": report.to_json()}, indent=1), encoding="utf-8")
    print(f"wrote {path}", file=sys.stderr)


def main(args) -> int:
    budget = QUICK if args.quick else FULL
    asked_n = getattr(args, "n", None)
    if asked_n is not None and asked_n < 1:
        raise UserError(f"--n must be at least 1, got {asked_n}")  # before any training
    started = time.perf_counter()
    if args.run:
        session = Session.open(args.run, args.device)
        train_seconds = session.recorded_seconds  # what training it took, as its checkpoint recorded
    else:
        data = bench_data(args)
        out = Path("runs") / f"bench-quality-{'quick-' if args.quick else ''}{time.strftime('%Y%m%d-%H%M%S')}"
        session = Session.create(bench_config(budget, args.device, data), out)
        print(session.data.report, file=sys.stderr)
        paces = ", ".join(f"{m.kind} ×{m.pace:g}" for m in session.config.members)
        train = session.config.train
        paced = f", then as pace reviews set every {train.review_every}" if train.pacing == "gain" else ""
        print(f"training {budget.steps} ensemble steps ({paces} optimizer steps each{paced}) into {out}",
              file=sys.stderr)
        session.train(budget.steps)
        train_seconds = time.perf_counter() - started
    if session.config.data.source != FASHION_MNIST and not args.quick:
        budget = dataclasses.replace(budget, n=FOLDER_N)
    if asked_n is not None:
        budget = dataclasses.replace(budget, n=asked_n)
    eval_started = time.perf_counter()
    report = evaluate(session, budget.n, fusion_plan(getattr(args, "fusions", None)),
                      judge_recipe=JudgeRecipe(steps=budget.judge_steps),
                      fit_samples=budget.fit_samples,
                      progress=lambda label, fraction: print(f"  {fraction:4.0%} {label}", file=sys.stderr))
    eval_seconds = time.perf_counter() - eval_started
    best_member, member_row = report.best_member()
    best_fusion, fusion_row = report.best_fusion()
    summary = {
        "best_member": best_member, "best_member_fd": member_row.fd, "best_member_recall": member_row.recall,
        "best_fusion": best_fusion, "best_fusion_fd": fusion_row.fd, "best_fusion_recall": fusion_row.recall,
        "fd_ratio_fusion_to_member": fusion_row.fd / member_row.fd,
        "recall_delta": fusion_row.recall - member_row.recall,
        "target_met": fusion_row.fd <= 0.70 * member_row.fd and fusion_row.recall >= member_row.recall - 0.05,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "total_seconds": time.perf_counter() - started, "quick": bool(args.quick), "steps": session.step,
        "run": str(session.run.path), "data": session.config.data.source, "size": session.config.data.size,
        "channels": session.config.data.channels, "n": budget.n, "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": torch.get_num_threads(), "device": str(session.device),
    }
    out_json = Path(args.out or "bench-quality.json")
    # the equal-steps verdict is printed and written before the (long) equal-compute training starts,
    # and each equal-compute row as it is measured, so an interrupted run loses none of what it measured
    print(eval_table(report))
    print(f"\nbest member: {best_member} FD {member_row.fd:.2f} (recall {member_row.recall:.3f}); "
          f"best fusion: {best_fusion} FD {fusion_row.fd:.2f} (recall {fusion_row.recall:.3f}); "
          f"ratio {summary['fd_ratio_fusion_to_member']:.3f}; target (≤ 0.70, recall ≥ −0.05) "
          f"{'met' if summary['target_met'] else 'not met'}", flush=True)
    write_result(out_json, summary, report)
    if getattr(args, "equal_compute", False):
        if not train_seconds:
            raise UserError("--equal-compute needs the ensemble's training time: train here (leave out --run) "
                            "or give a run whose checkpoint recorded it")
        summary["equal_compute"] = []

        def keep(row: equal_compute.AloneRow) -> None:  # each row is written as soon as it is measured
            summary["equal_compute"].append({"label": equal_compute.label(row), "kind": row.kind, "steps": row.steps,
                                             "train_seconds": row.train_seconds, "sample_steps": row.sample_steps,
                                             **dataclasses.asdict(row.row)})
            print(f"equal compute: {equal_compute.label(row)}: FD {row.row.fd:.2f} (recall {row.row.recall:.3f})",
                  file=sys.stderr, flush=True)
            write_result(out_json, summary, report)

        alone = equal_compute.equal_compute_rows(session, report, train_seconds, budget.n, budget.judge_steps,
                                   session.run.path / "equal-compute", budget.max_sample_steps, on_row=keep)
        top = equal_compute.best_alone(alone)
        summary.update({
            "best_equal_compute": equal_compute.label(top), "best_equal_compute_fd": top.row.fd,
            "best_equal_compute_recall": top.row.recall,
            "fd_ratio_fusion_to_equal_compute": fusion_row.fd / top.row.fd,
            "recall_delta_equal_compute": fusion_row.recall - top.row.recall,
            "total_seconds": time.perf_counter() - started,
        })
        print(markdown_table(["equal compute", "FD", "recall", "precision", "samples/s"],
                             [[equal_compute.label(r), f"{r.row.fd:.2f}", f"{r.row.recall:.3f}", f"{r.row.precision:.3f}",
                               f"{r.row.samples_per_s:.0f}"] for r in alone]))
        print(f"best fusion ÷ best equal-compute member ({summary['best_equal_compute']}): "
              f"{summary['fd_ratio_fusion_to_equal_compute']:.3f}, recall {summary['recall_delta_equal_compute']:+.3f}")
        write_result(out_json, summary, report)
    print(f"time: train {train_seconds:.0f} s, evaluate {eval_seconds:.0f} s, total {summary['total_seconds']:.0f} s")
    return 0
