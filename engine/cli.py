"""The headless CLI: argparse → engine API. Exit 0 on success, 2 on bad input (one line, no
traceback), 130 when interrupted (after saving a checkpoint)."""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from engine.config import (COMPILE_MODES, DEVICES, MAX_SAMPLES, MIN_EVAL_SAMPLES, PACINGS, PRECISIONS, SAMPLE_COUNT,
                           TrainConfig)
from engine.cli_sample import cmd_sample
from engine.errors import UserError

EXIT_FAILED = 1       # the run could not finish as asked (e.g. the final checkpoint could not be written)
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_STEPS = 10**9
MAX_SEED = 2**63 - 1
EVAL_SAMPLES = 2000   # evaluate's default --n


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UserError(f"{message} (see '{self.prog} --help')")


def build_parser() -> Parser:
    parser = Parser(prog="chorus", description="Train image generators and fuse them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    train = sub.add_parser("train", help="start a new run")
    train.add_argument("--data", help="'fashion-mnist', an image folder or an .npz of uint8 images")
    train.add_argument("--members", help="comma-separated member kinds (default: every registered kind: "
                                         "dcgan,vae,diffusion,judge)")
    train.add_argument("--steps", type=_int, help=f"ensemble steps: each member takes its pace × them (default {TrainConfig.steps})")
    train.add_argument("--out", required=True, type=Path, help="run folder to create")
    train.add_argument("--device", choices=DEVICES)
    train.add_argument("--seed", type=_int)
    train.add_argument("--size", type=_int_or_auto, help="image size in pixels (28, 32, 64…) or auto (default: "
                                                       "the pictures' common short side, at most 64)")
    train.add_argument("--channels", type=_int_or_auto, choices=[1, 3, 4, "auto"],
                       help="1 grey, 3 colour, 4 colour + transparency, or auto (default: what the pictures are)")
    train.add_argument("--holdout", type=float, help="share of a folder or .npz never trained on, the "
                                                     "evaluation's reference (default 0.1; 0: none)")
    train.add_argument("--flip", action="store_true", default=None, help="random horizontal flips")
    train.add_argument("--batch-size", type=_int, help="batch size for every member")
    train.add_argument("--checkpoint-every", type=_int)
    train.add_argument("--log-every", type=_int)
    train.add_argument("--preview-every", type=_int)
    train.add_argument("--precision", choices=list(PRECISIONS),
                       help="autocast for the forward passes (auto: what bench speed measured faster for each "
                            "member and device: bf16 on a CPU with native bf16, else fp32)")
    train.add_argument("--compile", choices=list(COMPILE_MODES),
                       help="torch.compile the training networks (graphs: with CUDA graphs); step-graph: "
                            "no compiling, each member's whole step replayed as one CUDA graph")
    train.add_argument("--pacing", choices=list(PACINGS),
                       help="fixed: each member keeps its pace; gain (experimental, measured worse than "
                            "fixed on the emoji sets: docs/quality.md): every --review-every steps the "
                            "generators' time moves to the one whose quality gains most per second "
                            f"(default {TrainConfig.pacing})")
    train.add_argument("--review-every", type=_int, help=f"ensemble steps between pace reviews (default "
                                                         f"{TrainConfig.review_every})")
    train.add_argument("--config", type=Path, help="a TOML file; flags given here override it")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="one rank of a data-parallel job started by torchrun (rank 0 writes)")

    resume = sub.add_parser("resume", help="continue a run from its last checkpoint")
    resume.add_argument("run", type=Path)
    resume.add_argument("--steps", type=_int_in(0, MAX_STEPS), help="total steps to reach (default: the run's own)")
    resume.add_argument("--device", choices=DEVICES)
    resume.add_argument("--quiet", action="store_true")
    resume.add_argument("--distributed", action="store_true", help="as for train: started by torchrun")

    sample = sub.add_parser("sample", help="write samples as a PNG grid, single PNGs or an animation; "
                                           "variations, interpolations, nearest training images")
    sample.add_argument("run", type=Path, nargs="?")
    which = sample.add_mutually_exclusive_group()
    which.add_argument("--member")
    which.add_argument("--fusion")
    sample.add_argument("--param", action="append", default=[], metavar="K=V", help="fusion parameter")
    sample.add_argument("--class", dest="class_", metavar="NAME",
                        help="images of one class: its name in the data (a subfolder, a Fashion-MNIST class) or "
                             "its index (a run whose members learnt classes)")
    sample.add_argument("--n", type=_int_in(1, MAX_SAMPLES),
                        help=f"how many images (default {SAMPLE_COUNT}; variations 16; interpolation steps 8)")
    sample.add_argument("--seed", type=_int_in(0, MAX_SEED), help="default 0")
    sample.add_argument("--out", help="FILE.png (a grid; a strip for --interpolate), FILE.webp or "
                                                 "FILE.gif (an animation), or DIR/ (one PNG per image, each with "
                                                 "its recipe)")
    sample.add_argument("--device", choices=DEVICES, default="cpu")
    sample.add_argument("--from-png", type=Path, help="repeat the sampling recorded in an exported PNG "
                                                      "(--n and --seed change it; RUN: the run it was made from)")
    sample.add_argument("--variations-of", type=Path, metavar="PNG",
                        help="neighbours of an image in a PNG Chorus exported (RUN: the run it was made from)")
    sample.add_argument("--index", type=_int_in(0, MAX_SAMPLES - 1),
                        help="--variations-of a grid: which image, from 0 (a single image's PNG knows its own)")
    sample.add_argument("--strength", type=_fraction, help="--variations-of: 0 the image itself … 1 unrelated "
                                                           "(default 0.5)")
    sample.add_argument("--interpolate", type=_seed_pair, metavar="SEED_A,SEED_B",
                        help="with --member: a strip of --n steps between the two seeds' images (slerp)")
    sample.add_argument("--nearest", type=_int_in(1, 16), metavar="K",
                        help="also write OUT-nearest.png: each image followed by its K nearest training images")
    sample.add_argument("--judge-steps", type=_int_in(1, 1_000_000),
                        help="--nearest: training steps of the evaluation judge (as for evaluate)")
    sample.add_argument("--columns", type=_int_in(1, MAX_SAMPLES),
                        help="a sprite sheet: this many images a row, --spacing pixels between, none around")
    sample.add_argument("--spacing", type=_int_in(0, 256), help="pixels between images (default 2)")

    evaluate = sub.add_parser("evaluate", help="measure every member and fusion (FD, KID, PRDC)")
    evaluate.add_argument("run", type=Path)
    evaluate.add_argument("--n", type=_int_in(MIN_EVAL_SAMPLES, MAX_SAMPLES), default=EVAL_SAMPLES,
                          help="samples per member and fusion")
    evaluate.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    evaluate.add_argument("--fusions", help="comma-separated strategies (default: all)")
    evaluate.add_argument("--features", choices=["judge", "random", "inception"], default="judge",
                          help="the feature space: the evaluation judge (default), random (a fixed, untrained CNN: "
                               "a second opinion nothing was trained to please) or inception (local weights)")
    evaluate.add_argument("--inception-weights", type=Path, help="local torchvision inception_v3 weights")
    evaluate.add_argument("--device", choices=DEVICES)
    evaluate.add_argument("--judge-steps", type=_int_in(1, 1_000_000),
                          help="training steps of the evaluation judge (fixed seed, cached per dataset; "
                               "default: the judge recipe's)")
    evaluate.add_argument("--per-class", action="store_true",
                          help="also FD per class: each member that learnt classes and each fusion asked for one "
                               "class at a time, against that class's reference images")

    bench = sub.add_parser("bench", help="benchmarks: quality, speed, ui, photos, augment or sizing; fetch-emoji lays out "
                                            "the emoji set")
    bench.add_argument("kind", choices=BENCH_KINDS)
    bench.add_argument("--count", type=_int_in(1, 1_000_000), help="photos: how many 12-megapixel JPEGs (default 1000)")
    bench.add_argument("--data", help="quality: fashion-mnist (default), emoji (after 'bench fetch-emoji') or a "
                                      "folder")
    bench.add_argument("--size", type=_int_or_auto, help="quality: image size (emoji: 32)")
    bench.add_argument("--channels", type=_int_or_auto, choices=[1, 3, 4, "auto"],
                       help="quality: channels (emoji: 4)")
    bench.add_argument("--subset", type=_int_in(10, 100_000), help="augment: training images taken from the emoji set "
                       "(default 500)")
    bench.add_argument("--seeds", type=_int_in(1, 100), help="augment: seeds per setting (default 3)")
    bench.add_argument("--first-seed", type=_int_in(0, 1_000_000), help="augment: the first seed (default 0; each "
                       "seed's runs are deterministic, so a later seed can be run on its own)")
    bench.add_argument("--tarball", type=Path, help="fetch-emoji: the package's .tgz already at hand (no npm)")
    bench.add_argument("--quick", action="store_true", help="small and fast: checks the pipeline only")
    bench.add_argument("--ablation", action="store_true",
                       help="speed: also time the trainer with each fast path added in turn")
    bench.add_argument("--repeats", type=int, help="speed, sizing: interleaved repeats per variant, medians reported "
                                                  "(default 3; more on a noisy machine)")
    bench.add_argument("--run", type=Path, help="quality: reuse this trained run instead of training (with "
                                                "--equal-compute: its checkpoint's recorded training time)")
    bench.add_argument("--fusions", help="quality: comma-separated rows of the evaluation plan (default: all)")
    bench.add_argument("--n", type=_int, help="quality: samples per row (default 10,000 on Fashion-MNIST, "
                                              "2,000 on a folder)")
    bench.add_argument("--equal-compute", action="store_true",
                       help="quality: also train each generator alone for the ensemble's training time, and "
                            "sample the diffusion alone with the fusion's sampling time (about 4× as long)")
    bench.add_argument("--device", choices=DEVICES, default="cpu")
    bench.add_argument("--out", type=Path, help="where to write the JSON (default: bench-<kind>.json)")
    return parser


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seed_pair(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected two seeds as SEED_A,SEED_B, got {text!r}")
    return _int_in(0, MAX_SEED)(parts[0].strip()), _int_in(0, MAX_SEED)(parts[1].strip())


def _int_or_auto(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else _int(text)


def _int_in(low: int, high: int):
    """An argparse type: an integer in [low, high] (checked before any file is read)."""
    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def main(argv: Sequence[str] | None = None, benches: dict[str, str] | None = None) -> int:
    """``benches``: bench kind → module, beyond the engine's own (main.py adds the GUI's "ui")."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "bench":
            return cmd_bench(args, {**BENCHES, **(benches or {})})
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"chorus: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("chorus: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_train(args: argparse.Namespace) -> int:
    from engine.config import load_config_file
    from engine.members.registry import require_a_generator, run_config
    from engine.session import Session

    raw = load_config_file(args.config) if args.config else {}
    config = run_config(_overlay(raw, args))
    require_a_generator(config)
    with _world(args, config.train.device) as (world, device):
        with _reading(args.quiet or (world is not None and not world.is_main)) as reading:
            session = Session.create(config, args.out, device, world=world, reading=reading)
        _say(world, session.data.report, *session.notes)
        return _train(session, config.train.steps, args.quiet)


def cmd_resume(args: argparse.Namespace) -> int:
    from engine.session import Session

    with _world(args, args.device or "auto") as (world, device):
        with _reading(args.quiet or (world is not None and not world.is_main)) as reading:
            session = Session.open(args.run, device, world=world, reading=reading)
        steps = args.steps if args.steps is not None else session.config.train.steps
        if steps <= session.step:
            _say(world, f"run {args.run} is already at step {session.step} (asked for {steps}): nothing to "
                        f"train; give --steps above {session.step} to go on")
            return 0
        start = f"at step {session.step}" if session.checkpoint else "from step 0 (it has no checkpoint)"
        _say(world, f"resuming {args.run} {start} → {steps}", *session.notes)
        return _train(session, steps, args.quiet)


@contextlib.contextmanager
def _world(args: argparse.Namespace, device: str):
    """(World, device) for a rank of a torchrun job with --distributed, else (None, args.device)."""
    if not args.distributed:
        yield None, args.device
        return
    from engine.training import distributed

    world = distributed.world_from_env()
    rank_device = distributed.start(world, device)
    try:
        yield world, rank_device
        # all ranks done (rank 0 writes the final checkpoint last) before the group is torn down: a rank
        # that left while its peer still worked was aborted by gloo ("terminate called…", 1 run in ~5)
        distributed.barrier()
    finally:
        distributed.stop()


@contextlib.contextmanager
def _reading(quiet: bool):
    """A progress bar for reading a folder's pictures (engine/cli_progress.py)."""
    from engine.cli_progress import FileProgress

    progress = FileProgress(disabled=quiet)
    try:
        yield progress
    finally:
        progress.close()


def _say(world, *lines: str) -> None:
    if world is None or world.is_main:
        for line in lines:
            print(line, file=sys.stderr)


def _overlay(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags on top of the config file's tables."""
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    data = merged.setdefault("data", {})
    train = merged.setdefault("train", {})
    for key, value in (("source", args.data), ("size", args.size), ("channels", args.channels), ("flip", args.flip),
                       ("holdout", args.holdout)):
        if value is not None:
            data[key] = value
    for key in ("steps", "seed", "device", "checkpoint_every", "log_every", "preview_every", "precision", "compile",
                "pacing", "review_every"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    from engine.members.registry import MEMBERS

    if args.members is not None:
        kinds = [k.strip().lower() for k in args.members.split(",") if k.strip()]
        if not kinds:
            raise UserError(f"--members is empty; choose from {', '.join(MEMBERS)}")
        old = _members_by_kind(merged.get("members", []))
        merged["members"] = [old.get(kind, {"kind": kind}) for kind in kinds]
    elif "members" not in merged:
        merged["members"] = [{"kind": k} for k in MEMBERS]
    if args.batch_size is not None:
        merged["members"] = [{**_table(m), "batch_size": args.batch_size} for m in _members_list(merged["members"])]
    return merged


def _members_list(members: Any) -> list[Any]:
    if isinstance(members, dict):
        return [{"kind": k, **_table(v)} for k, v in members.items()]
    return list(members) if isinstance(members, list) else []


def _members_by_kind(members: Any) -> dict[str, dict[str, Any]]:
    return {str(_table(m).get("kind", "")).lower(): _table(m) for m in _members_list(members)}


def _table(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _train(session, steps: int, quiet: bool) -> int:
    from engine.cli_progress import Progress
    from engine.training.control import Control

    control = Control()
    stop = lambda signum, frame: control.request_stop()  # noqa: E731 - save, then exit
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    world = session.world
    progress = Progress(session.step, steps, disabled=quiet or (world is not None and not world.is_main))
    try:
        finished = session.train(steps, [progress], control)
    finally:
        progress.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if world is not None and not world.is_main:  # rank 0 reports for the job
        return {"stopped": EXIT_INTERRUPTED, "failed": EXIT_FAILED}.get(finished.reason, 0)
    where = session.checkpoint
    if finished.save_error:
        kept = f"the last saved checkpoint is {where}" if where else "no checkpoint was saved"
        print(f"chorus: error: trained to step {finished.step} but could not save it; {kept}", file=sys.stderr)
        return EXIT_FAILED
    if finished.reason == "failed":
        print(f"chorus: error: every member failed and was paused at step {finished.step}; "
              f"checkpoint {where}", file=sys.stderr)
        return EXIT_FAILED
    if finished.reason == "stopped":
        print(f"chorus: stopped at step {finished.step}; checkpoint saved in {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"trained to step {finished.step}; run in {session.run.path}, checkpoint {where}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from engine.evaluation import evaluate, fusion_plan
    from engine.metrics.features import JudgeRecipe
    from engine.report import eval_table
    from engine.session import Session

    with _reading(False) as reading:
        session = Session.open(args.run, args.device, reading=reading)
    if session.checkpoint is None:
        raise UserError(f"run {args.run} has no checkpoint yet; train it first")
    plan = fusion_plan(args.fusions)
    recipe = JudgeRecipe(steps=args.judge_steps) if args.judge_steps else JudgeRecipe()
    # progress goes to stderr with or without --json: stdout carries only the report
    report = evaluate(session, args.n, plan, args.seed, features=args.features, judge_recipe=recipe,
                      inception_weights=args.inception_weights, progress=StageProgress(sys.stderr),
                      per_class=args.per_class)
    document = report.to_json()
    session.run.write_eval_report(document)
    print(json.dumps(document) if args.json else eval_table(report))
    return 0


class StageProgress:
    """Evaluation progress as one stderr line per stage ("  40% vae"); the judge's training, which
    reports often, is said at most every 10 %."""

    def __init__(self, stream):
        self.stream = stream
        self.last: tuple[str, int] | None = None

    def __call__(self, label: str, fraction: float) -> None:
        tenth = int(fraction * 10)
        if self.last is not None and self.last[0] == label and self.last[1] == tenth:
            return
        self.last = (label, tenth)
        print(f"  {fraction:4.0%} {label}", file=self.stream, flush=True)


# bench kind → module with ``main(args)``. "ui" lives in the GUI, which the engine never imports:
# main.py adds it (engine.cli.main's ``benches``), so an engine-only install says it is not there.
BENCHES = {"quality": "engine.bench.quality", "speed": "engine.bench.speed", "photos": "engine.bench.photos",
           "augment": "engine.bench.augment", "sizing": "engine.bench.sizing"}
BENCH_KINDS = ("quality", "speed", "ui", "photos", "augment", "sizing", "fetch-emoji")


def cmd_bench(args: argparse.Namespace, benches: dict[str, str] | None = None) -> int:
    import importlib

    if args.kind == "fetch-emoji":
        from engine.bench.emoji import fetch

        print(f"laid out {fetch(args.tarball)}", file=sys.stderr)
        return 0
    module = (benches or BENCHES).get(args.kind)
    if module is None:
        raise UserError(f"bench {args.kind} is not available in this build")
    try:
        bench = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise UserError(f"bench {args.kind} is not available in this build") from None
        raise
    return bench.main(args)


COMMANDS = {"train": cmd_train, "resume": cmd_resume, "sample": cmd_sample, "evaluate": cmd_evaluate,
            "bench": cmd_bench}
