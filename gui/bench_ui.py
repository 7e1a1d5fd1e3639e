"""``python main.py bench ui``: does the window stay smooth while training runs at full speed, and
does having it open cost training speed?

Two measurements in one invocation, on the same config (Fashion-MNIST 28 px, one DCGAN, batch 64,
CPU, torch's default thread count in both):

* **headless**: ``python main.py train …`` in a subprocess, exactly as a user would run it;
* **window**: the studio window (offscreen when there is no display) set up through its pages and
  trained through its child process, with the training page showing, while a 5 ms Qt timer
  records how late each tick fires (the event-loop stall).

Training speed in both comes from the run folder's ``metrics.jsonl`` (steps and seconds between
the first and the last log line, so process start-up does not count). The runs alternate
(headless, window, headless, window…) so drifting machine load hits both sides alike, and both
use passive OpenMP waits, as the studio's child does.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TIMER_MS = 5
TARGETS = {"p99_ms": 16.0, "max_ms": 100.0, "ratio": 0.95}
BATCH = 64
MEMBER = "dcgan"
ROOT = Path(__file__).resolve().parent.parent
OMP_WAIT_POLICY = "PASSIVE"


def bench_config(quick: bool) -> dict[str, Any]:
    return {"data": "fashion-mnist", "member": MEMBER, "batch_size": BATCH, "size": 28,
            "steps": 60 if quick else 300, "log_every": 10, "preview_every": 50, "checkpoint_every": 10**6,
            "seed": 0, "device": "cpu", "rounds": 1 if quick else 2}


def images_per_s(run: Path, batch: int) -> float:
    """Training throughput from the run's log: images between the first and the last log line."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if len(records) < 2:
        raise RuntimeError(f"{run} logged fewer than two points; raise the step count")
    first, last = records[0], records[-1]
    return (last["step"] - first["step"]) * batch / (last["time"] - first["time"])


def run_headless(config: dict[str, Any], out: Path) -> float:
    command = [sys.executable, str(ROOT / "main.py"), "train", "--data", config["data"], "--members",
               config["member"], "--steps", str(config["steps"]), "--out", str(out), "--device", config["device"],
               "--seed", str(config["seed"]), "--size", str(config["size"]), "--batch-size", str(config["batch_size"]),
               "--log-every", str(config["log_every"]), "--preview-every", str(config["preview_every"]),
               "--checkpoint-every", str(config["checkpoint_every"]), "--quiet"]
    env = {k: v for k, v in os.environ.items() if k != "CHORUS_TRAIN_THREADS"}
    # The studio's child sets passive OpenMP waits (engine/child.py); the baseline gets the
    # same, so the ratio measures the window's cost and not the spin policy (which alone made the
    # headless run 2-3x slower on a busy machine).
    env["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"headless training failed: {result.stderr.strip()}")
    return images_per_s(out, config["batch_size"])


class StallMeter:
    """A 5 ms precise timer; each tick records how late it came (its interval minus 5 ms)."""

    def __init__(self):
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TIMER_MS)
        self.timer.timeout.connect(self._tick)
        self.late_ms: list[float] = []
        self._last: float | None = None

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.late_ms.append(max(0.0, (now - self._last) * 1000.0 - TIMER_MS))
        self._last = now


def run_window(config: dict[str, Any], out: Path, meter: StallMeter) -> tuple[float, dict[str, Any]]:
    from PySide6.QtCore import QEventLoop, QTimer

    from gui.main_window import MainWindow

    window = MainWindow(preview_data=False)
    window.bridge.child_threads = None  # torch's default, as the headless CLI
    window.resize(1280, 800)
    window.show()
    window.planned_path = str(out)
    page = window.members_page
    page.clear()
    page.add_member(config["member"], {"batch_size": config["batch_size"]})
    window.data_page.set_config({"source": config["data"], "size": config["size"], "channels": 1, "flip": False},
                                refresh=False)
    training = window.training_page
    training.set_train_config({k: config[k] for k in ("steps", "seed", "device", "log_every", "preview_every",
                                                      "checkpoint_every")})
    window.tabs.setCurrentWidget(training)
    loop = QEventLoop()
    failures: list[str] = []
    cpu: list[float] = []   # the window process's CPU seconds while training ran, and the wall seconds
    wall: list[float] = []
    window.bridge.sig_training_started.connect(
        lambda *_: (meter.start(), cpu.append(-time.process_time()), wall.append(-time.perf_counter())))
    window.bridge.sig_training_finished.connect(
        lambda *_: (meter.stop(), cpu.append(time.process_time()), wall.append(time.perf_counter())))
    window.bridge.sig_training_failed.connect(failures.append)
    window.bridge.sig_training_ended.connect(loop.quit)
    window.start_training()
    if not window.bridge.training:
        raise RuntimeError(f"the window refused to train: {window.last_message}")
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(30 * 60 * 1000)
    loop.exec()
    meter.stop()
    details = {"window_cpu_s": sum(cpu) if len(cpu) == 2 else None, "wall_s": sum(wall) if len(wall) == 2 else None,
               "redraws": {name: row.plot.redraws for name, row in training.rows.items()},
               "points": {name: row.plot.points() for name, row in training.rows.items()}}
    window.close()
    if failures:
        raise RuntimeError(f"training in the window failed: {failures[0]}")
    return images_per_s(out, config["batch_size"]), details


def main(args) -> int:
    quick = bool(getattr(args, "quick", False))
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from gui.app import make_app

    app = make_app([sys.argv[0]])
    config = bench_config(quick)
    meter = StallMeter()
    headless, window, details = [], [], []
    with tempfile.TemporaryDirectory(prefix="chorus-bench-ui-") as temp:
        for round_ in range(config["rounds"]):
            print(f"round {round_ + 1}/{config['rounds']}: headless CLI…", file=sys.stderr)
            headless.append(run_headless(config, Path(temp) / f"cli-{round_}"))
            print(f"round {round_ + 1}/{config['rounds']}: studio window…", file=sys.stderr)
            rate, detail = run_window(config, Path(temp) / f"gui-{round_}", meter)
            window.append(rate)
            details.append(detail)
    late = np.asarray(meter.late_ms, dtype=np.float64)
    stall = {"p50_ms": float(np.percentile(late, 50)), "p99_ms": float(np.percentile(late, 99)),
             "max_ms": float(late.max()), "ticks": int(len(late))}
    ratio = float(np.mean(window) / np.mean(headless))
    passed = {"p99": stall["p99_ms"] <= TARGETS["p99_ms"], "max": stall["max_ms"] <= TARGETS["max_ms"],
              "ratio": ratio >= TARGETS["ratio"]}
    result = {
        "bench": "ui", "quick": quick, "config": config, "timer_ms": TIMER_MS, "stall": stall,
        "omp_wait_policy": OMP_WAIT_POLICY,
        "images_per_s": {"headless": headless, "window": window}, "ratio": ratio, "targets": TARGETS,
        "passed": passed, "window": details,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "qt_platform": app.platformName()},
    }
    out = Path(getattr(args, "out", None) or "bench-ui.json")
    out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(table(result))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def table(result: dict[str, Any]) -> str:
    stall, targets, ok = result["stall"], result["targets"], result["passed"]
    mark = lambda good: "ok" if good else "MISSED"  # noqa: E731
    rates = result["images_per_s"]
    rows = [
        ("event-loop stall p50", f"{stall['p50_ms']:.2f} ms", "", ""),
        ("event-loop stall p99", f"{stall['p99_ms']:.2f} ms", f"<= {targets['p99_ms']:g} ms", mark(ok["p99"])),
        ("event-loop stall max", f"{stall['max_ms']:.2f} ms", f"<= {targets['max_ms']:g} ms", mark(ok["max"])),
        ("images/s, headless CLI", " / ".join(f"{r:.0f}" for r in rates["headless"]), "", ""),
        ("images/s, window open", " / ".join(f"{r:.0f}" for r in rates["window"]), "", ""),
        ("window / headless", f"{result['ratio']:.3f}", f">= {targets['ratio']:g}", mark(ok["ratio"])),
        ("window process CPU", " / ".join(f"{d['window_cpu_s'] / d['wall_s']:.1%}" for d in result["window"]
                                          if d.get("window_cpu_s") is not None and d.get("wall_s")), "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"bench ui ({'quick' if result['quick'] else 'full'}): {result['config']['member']}, batch "
             f"{result['config']['batch_size']}, {result['config']['steps']} steps, {result['stall']['ticks']} ticks "
             f"of a {result['timer_ms']} ms timer, Qt platform {result['machine']['qt_platform']}"]
    lines += [f"  {name:<{width}}  {value:>18}  {target:>10}  {verdict}" for name, value, target, verdict in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    sys.exit(main(parser.parse_args()))
