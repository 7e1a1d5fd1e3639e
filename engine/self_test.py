"""The self-test: prove that this build of Chorus works end to end, in seconds, without a window.

``Chorus --self-test`` (frozen) or ``python main.py --self-test`` (source) trains every registered
member a few steps (with its class's ``tiny_params``) on the bundled Fashion-MNIST at 16 px, samples,
fuses with every registered strategy the run can use (with its ``quick_params``), evaluates, writes and
re-reads a checkpoint and an exported PNG, explores (variations of an exported image, an
interpolation, the nearest training images), all inside a temporary folder, and prints one line per
step with its time. Exit status 0 only when every step passed. Nothing is written outside the
temporary folder: the evaluation cache is pointed there too.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence, TextIO

from engine.config import DEVICES  # no torch: the environment step's time includes importing it

SIZE = 16
SAMPLES = 16
EVAL_SAMPLES = 64
GRAPH_STEPS = 10  # the CUDA graph check: warm-up steps, a capture, replays
CACHE_ENV = "CHORUS_CACHE_DIR"  # engine.metrics.features.cache_dir() reads it; not imported here, so
                                # the environment step's time includes importing torch


@dataclass
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str


def tiny_config(steps: int, device: str) -> dict[str, Any]:
    """Every registered member, tiny, on the bundled Fashion-MNIST resized to 16 px."""
    from engine.config import FASHION_MNIST
    from engine.members.registry import MEMBERS

    return {"data": {"source": FASHION_MNIST, "size": SIZE, "channels": 1},
            "members": [{"kind": kind, "batch_size": 16, "params": dict(cls.tiny_params)}
                        for kind, cls in MEMBERS.items()],
            "train": {"steps": steps, "seed": 0, "device": device, "log_every": 1,
                      "checkpoint_every": max(1, steps // 2), "preview_every": 1000}}


class SelfTest:
    """The steps in order; each one checks what it made and says so in one line."""

    def __init__(self, folder: Path, device: str = "auto", steps: int = 4, out: TextIO | None = None):
        self.folder = folder
        self.device = device
        self.steps = steps
        self.out = out or sys.stdout
        self.results: list[StepResult] = []
        self.session = None
        self.png: Path | None = None

    def run(self) -> bool:
        for name, step in (("environment", self.environment), ("bundled data", self.bundled_data),
                           ("train", self.train), ("sample", self.sample), ("fuse", self.fuse),
                           ("checkpoint", self.checkpoint), ("export png", self.export_png),
                           ("evaluate", self.evaluate), ("explore", self.explore), ("cuda graphs", self.cuda_graphs)):
            needs_session = name not in ("environment", "bundled data", "train")
            if needs_session and self.session is None:
                self.record(StepResult(name, False, 0.0, "skipped: training did not succeed"))
                continue
            started = time.perf_counter()
            try:
                detail = step()
                self.record(StepResult(name, True, time.perf_counter() - started, detail))
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next step runs
                last = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{Path(last.filename).name}:{last.lineno}"
                self.record(StepResult(name, False, time.perf_counter() - started,
                                       f"{type(exc).__name__}: {exc} ({where})"))
        return all(r.ok for r in self.results)

    def record(self, result: StepResult) -> None:
        self.results.append(result)
        mark = "ok  " if result.ok else "FAIL"
        print(f"  {mark} {result.name:<13}{result.seconds:7.2f} s  {result.detail}", file=self.out, flush=True)

    # -- the steps ---------------------------------------------------------------------------------
    def environment(self) -> str:
        import torch  # the first import of torch: its time is this step's

        from engine import __version__
        from engine.device import choose_device

        chosen = choose_device(self.device)
        cuda = torch.cuda.is_available()
        gpu = f" ({torch.cuda.get_device_name(0)})" if cuda else ""
        frozen = "frozen" if getattr(sys, "frozen", False) else "source"
        return (f"Chorus {__version__} ({frozen}), Python {platform.python_version()}, torch {torch.__version__}, "
                f"torch.cuda.is_available()={cuda}{gpu}, device {chosen}")

    def bundled_data(self) -> str:
        from engine.resources import resource_path

        folder = resource_path("fashion-mnist")
        files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        wanted = {"LICENSE", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
        missing = sorted(wanted - set(files))
        _require(not missing, f"missing in {folder}: {', '.join(missing)}")
        return f"{folder} ({len(files)} files)"

    def train(self) -> str:
        from engine.members.registry import run_config
        from engine.session import Session

        config = run_config(tiny_config(self.steps, self.device))
        session = Session.create(config, self.folder / "run")
        finished = session.train(self.steps)
        _require(finished.reason == "done" and not finished.save_error,
                 f"training ended {finished.reason!r} at step {finished.step} {finished.save_error}")
        steps = {name: member.step for name, member in session.members.items()}
        owed = {name: session.paces[name].quota(self.steps) for name in session.members}
        _require(steps == owed, f"member steps {steps}, expected {owed} (their paces)")
        self.session = session
        return f"{', '.join(steps)} to step {self.steps} on {len(session.data.images)} images ({session.device})"

    def sample(self) -> str:
        import torch

        shapes = []
        for name, member in self.session.generators().items():
            images = member.sample(SAMPLES, torch.Generator().manual_seed(1))
            _check_images(images, name)
            shapes.append(name)
        return f"{SAMPLES} images each from {', '.join(shapes)}, finite, in [-1, 1]"

    def fusions(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every registered strategy this run's members allow, with its quick parameters."""
        from engine.fusion.registry import FUSIONS

        kinds = self.session.config.kinds()
        return {name: (name, dict(cls.quick_params)) for name, cls in FUSIONS.items() if not cls.unavailable(kinds)}

    def fuse(self) -> str:
        import torch

        from engine.fusion.registry import fusion

        context = self.session_context()
        made = []
        for label, (name, params) in self.fusions().items():
            strategy = fusion(name)
            fused = strategy.fuse(self.session.members, SAMPLES, torch.Generator().manual_seed(2), context=context,
                                  **strategy.validate(params))
            _check_images(fused.images, label)
            _require(len(fused.provenance) == SAMPLES, f"{label}: {len(fused.provenance)} provenance entries")
            made.append(f"{label} ({len(set(fused.provenance))} sources)")
        return ", ".join(made)

    def session_context(self):
        from engine.evaluation import lazy_context

        return lazy_context(self.session)

    def checkpoint(self) -> str:
        import torch

        from engine.session import Session

        saved = self.session.checkpoint
        _require(saved is not None and saved.is_dir(), f"no checkpoint folder after training: {saved}")
        again = Session.open(self.session.run.path, self.device, with_data=False)
        _require(again.checkpoint == saved and again.step == self.steps,
                 f"reopened at {again.checkpoint} step {again.step}, expected {saved} step {self.steps}")
        for name, member in self.session.generators().items():
            a = member.sample(SAMPLES, torch.Generator().manual_seed(3))
            b = again.member(name).sample(SAMPLES, torch.Generator().manual_seed(3))
            _require(torch.allclose(a, b, atol=1e-4), f"{name} samples differently after reloading")
        files = sorted(p.name for p in saved.iterdir())
        return f"{saved.name}: {', '.join(files)}; reloaded members sample the same images"

    def export_png(self) -> str:
        import numpy as np
        from PIL import Image

        from engine.evaluation import lazy_context
        from engine.sampling import SampleRequest, sample_images, sample_to_png
        from engine.store.images import grid, read_png_metadata, to_nhwc_uint8

        request = SampleRequest(run=self.session.run.path, fusion="average", n=SAMPLES, seed=4)
        path = sample_to_png(request, self.folder / "export.png", self.device, context_for=lazy_context)
        meta = read_png_metadata(path)
        _require(meta.get("fusion") == "average" and meta.get("n") == SAMPLES and meta.get("seed") == 4
                 and meta.get("run_id") == self.session.run.run_id, f"PNG parameters {meta}")
        again = SampleRequest.from_png(path)
        images, _, _ = sample_images(self.session, again, self.session_context())
        with Image.open(path) as picture:
            pixels = np.asarray(picture)
        expected = grid(to_nhwc_uint8(images))[..., 0]
        differing = int(np.count_nonzero(np.abs(pixels.astype(int) - expected.astype(int)) > 1))
        _require(pixels.shape == expected.shape and differing == 0,
                 f"re-sampling from the PNG's parameters differs in {differing} pixels")
        return f"{path.name} {pixels.shape[1]}×{pixels.shape[0]}, parameters read back and re-sampled identically"

    def evaluate(self) -> str:
        import math

        from engine.evaluation import evaluate
        from engine.metrics.features import JudgeRecipe

        fusions = self.fusions()
        report = evaluate(self.session, EVAL_SAMPLES, fusions, seed=0,
                          judge_recipe=JudgeRecipe(steps=20, batch_size=32), fit_samples=EVAL_SAMPLES)
        rows = {**report.members, **report.fusions}
        _require(set(report.fusions) == set(fusions), f"fusions measured {sorted(report.fusions)}, "
                                                      f"skipped {report.skipped}")
        for name, row in rows.items():
            values = (row.fd, row.kid, row.precision, row.recall, row.density, row.coverage)
            _require(all(math.isfinite(v) for v in values), f"{name}: a metric is not finite: {row}")
        best, row = report.best_member()
        return (f"FD/KID/PRDC of {len(report.members)} members and {len(report.fusions)} fusions on "
                f"{EVAL_SAMPLES} samples; best member {best} FD {row.fd:.1f}")

    def explore(self) -> str:
        """Variations at strength 0 of an exported single image give it back; an interpolation ends on
        the two seeds' own images; every image has nearest training images (engine/explore.py)."""
        import numpy as np

        from engine import explore
        from engine.metrics.features import JudgeRecipe
        from engine.store.images import to_nhwc_uint8

        context = self.session_context()
        kinds = [name for name, m in self.session.generators().items() if m.can_vary and m.can_interpolate]
        _require(bool(kinds), "no member makes variations and interpolations")
        done = []
        for name in kinds:
            kept = explore.write(explore.replay(self.session, explore.seed_recipe(self.session, name, 5)),
                                 self.folder / "kept", stem=name, folder=True)[0]
            source = explore.source_of(self.session, explore.recipe_of_png(kept), context)
            same = explore.variations(self.session, source, 4, 0.0, 1, context)
            _require(all(np.array_equal(image, to_nhwc_uint8(source.image[None])[0])
                         for image in to_nhwc_uint8(same.images)), f"{name}: strength 0 changed the image")
            a, b = (explore.source_of(self.session, explore.seed_recipe(self.session, name, s)) for s in (5, 6))
            strip = explore.interpolation(self.session, a, b, 4)
            ends = to_nhwc_uint8(strip.images[[0, -1]]).astype(int)
            own = to_nhwc_uint8(self.session.member(name).sample(1, torch_seed(5)))[0], \
                to_nhwc_uint8(self.session.member(name).sample(1, torch_seed(6)))[0]
            _require(np.abs(ends[0] - own[0]).max() <= 1 and np.abs(ends[1] - own[1]).max() <= 1,
                     f"{name}: the strip does not end on the seeds' own images")
            done.append(name)
        evaluator = explore.evaluator_for(self.session, JudgeRecipe(steps=20, batch_size=32))
        nearest = explore.nearest_training(evaluator, strip.images, 2)
        _require(all(len(found) == 2 for found in nearest.neighbours), "nearest training images missing")
        flag = "with" if nearest.likely_copy is not None else "without"
        return (f"variations and interpolation of {', '.join(done)}; 2 nearest training images of each, "
                f"{flag} a likely-copy flag")

    def cuda_graphs(self) -> str:
        """On a CUDA GPU: whole training steps captured and replayed (the packaged app's only graphs:
        it carries no compiler) train as eager steps do."""
        import math

        from engine.accel import FastPaths
        from engine.members.registry import run_config
        from engine.session import Session
        from engine.training.events import MemberFailed, StepLogged
        from engine.training.step_graph import WARMUP_STEPS

        device = self.session.device
        if device.type != "cuda":
            return f"not run: no CUDA graphs on {device}"
        raw = tiny_config(GRAPH_STEPS, str(device))
        raw["members"] = [m for m in raw["members"] if m["kind"] in ("dcgan", "vae")]
        config = run_config(raw)
        losses = {}
        for graphs in (False, True):
            fast = FastPaths(fused_optimizer=True, step_graph=graphs)
            session = Session.create(config, self.folder / f"graphs-{graphs}", fast=fast)
            events: list = []
            session.train(GRAPH_STEPS, [events.append])
            failed = [e.message for e in events if isinstance(e, MemberFailed)]
            _require(not failed, "; ".join(failed))
            losses[graphs] = [(e.member, e.step, e.losses) for e in events if isinstance(e, StepLogged)]
        for (member, step, eager), (_, _, replayed) in zip(losses[False], losses[True], strict=True):
            for key, value in eager.items():
                _require(math.isclose(replayed[key], value, rel_tol=1e-2, abs_tol=1e-3),
                         f"{member} step {step}: {key} {replayed[key]:.5g} replayed, {value:.5g} eager")
        return (f"dcgan, vae: {GRAPH_STEPS} steps ({WARMUP_STEPS} eager, then one captured step replayed) "
                "with the losses of eager steps")


def torch_seed(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _check_images(images, label: str) -> None:
    import torch

    _require(images.dim() == 4 and images.shape[0] == SAMPLES and tuple(images.shape[1:]) == (1, SIZE, SIZE),
             f"{label}: shape {tuple(images.shape)}")
    _require(bool(torch.isfinite(images).all()), f"{label}: non-finite pixels")
    _require(float(images.min()) >= -1.0001 and float(images.max()) <= 1.0001, f"{label}: pixels outside [-1, 1]")


def run_self_test(device: str = "auto", steps: int = 4, out: TextIO | None = None,
                  keep: Path | None = None) -> tuple[bool, list[StepResult]]:
    """Run every step in a temporary folder (or ``keep``, left in place); (all passed, results)."""
    out = out or sys.stdout
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="chorus-self-test-") as temp:
        folder = Path(keep) if keep else Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"Chorus self-test in {folder}", file=out, flush=True)
        previous = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = str(folder / "cache")
        try:
            test = SelfTest(folder, device, steps, out)
            passed = test.run()
        finally:
            _restore_env(CACHE_ENV, previous)
    verdict = "passed" if passed else f"FAILED ({sum(not r.ok for r in test.results)} of {len(test.results)} steps)"
    print(f"self-test {verdict} in {time.perf_counter() - started:.1f} s", file=out, flush=True)
    return passed, test.results


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus --self-test",
                                     description="Check that this build trains, samples, fuses, evaluates and saves.")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--steps", type=int, default=4, help="ensemble steps (at least 2; each member takes its pace × them)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    passed, _ = run_self_test(args.device, args.steps, out, args.keep)
    return 0 if passed else 1

