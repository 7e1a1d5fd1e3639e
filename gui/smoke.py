"""The GUI smoke check of a packaged build: open the studio window, say when it was shown, optionally
train a few steps through the real Start path (the spawned trainer child process), save screenshots,
close the window and exit 0 only if all of that worked.

``Chorus --smoke-gui [--train-steps N] [--screenshot FILE.png] [--timeout S]``. Settings and runs go
to a temporary folder, never the user's. Run it with QT_QPA_PLATFORM=offscreen where there is no display.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from PySide6.QtCore import QTimer

STARTED = time.monotonic()  # module import: a fallback when the process start time is unknown
STOP_GRACE_S = 60.0


def process_age() -> float:
    """Seconds since this process started (Linux: from /proc, so the frozen bootloader counts too)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start
    except (OSError, ValueError, IndexError):
        return time.monotonic() - STARTED


class Smoke:
    def __init__(self, app, window, args: argparse.Namespace):
        self.app, self.window, self.args = app, window, args
        self.failures: list[str] = []
        self.finished: tuple[int, str] | None = None
        self.train_started = 0.0

    def say(self, text: str) -> None:
        print(f"smoke-gui: {text}", flush=True)

    def shown(self) -> None:
        self.say(f"main window shown {process_age():.2f} s after the process started")
        self.grab("")
        if self.args.train_steps:
            self.start_training()
        else:
            self.close()

    def grab(self, suffix: str) -> None:
        if self.args.screenshot is None:
            return
        path = self.args.screenshot.with_name(self.args.screenshot.stem + suffix + self.args.screenshot.suffix)
        if self.window.grab().save(str(path)):
            self.say(f"screenshot {path}")
        else:
            self.failures.append(f"could not save the screenshot {path}")

    def start_training(self) -> None:
        bridge = self.window.bridge
        bridge.sig_training_finished.connect(lambda step, reason: setattr(self, "finished", (step, reason)))
        bridge.sig_training_failed.connect(lambda message: self.failures.append(f"training failed: {message}"))
        bridge.sig_training_ended.connect(self.training_ended)
        self.window.tabs.setCurrentWidget(self.window.training_page)
        self.train_started = time.monotonic()
        self.say(f"training {self.args.train_steps} ensemble steps in the trainer child process")
        self.window.data_page.sig_error.connect(self.data_failed)
        self.window.start_training(self.args.train_steps)
        if not bridge.training and not self.window.start_pending:  # pending: it starts once the data is read
            self.failures.append("training did not start (see the message above)")
            self.close()

    def data_failed(self, message: str) -> None:
        self.failures.append(f"the data could not be read: {message}")
        self.close()

    def training_ended(self) -> None:
        seconds = time.monotonic() - self.train_started
        if self.finished is None or self.finished[1] != "done":
            self.failures.append(f"training ended without finishing: {self.finished}")
        else:
            self.say(f"child process trained to step {self.finished[0]} and ended in {seconds:.2f} s")
        self.app.processEvents()
        self.grab("-training")
        self.close()

    def close(self) -> None:
        self.window.close()
        self.app.quit()

    def timed_out(self) -> None:
        self.failures.append(f"gave up after {self.args.timeout} s")
        if not self.window.bridge.training:
            self.close()
            return
        self.window.bridge.stop_training()  # training_ended() closes the window once the child is gone
        QTimer.singleShot(int(STOP_GRACE_S * 1000), self.abandon)

    def abandon(self) -> None:
        """The trainer did not stop: a smoke check must still end, so end the process as it is."""
        self.say(f"FAIL the trainer did not stop within {STOP_GRACE_S} s of the timeout")
        os._exit(3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chorus --smoke-gui", description=__doc__.splitlines()[0])
    parser.add_argument("--train-steps", type=int, default=0, help="train this many ensemble steps, then close")
    parser.add_argument("--screenshot", type=Path, help="save the window as this PNG (and -training.png)")
    parser.add_argument("--timeout", type=float, default=300.0, help="fail after this many seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="chorus-smoke-gui-") as temp:
        os.environ["CHORUS_USER_DATA"] = temp  # runs and settings of this check stay in here
        return _run(args, Path(temp))


def _run(args: argparse.Namespace, temp: Path) -> int:
    from PySide6.QtCore import QSettings

    from gui.app import install_error_hook, make_app

    app = make_app([sys.argv[0]])
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(temp / "settings"))
    from gui.main_window import MainWindow

    window = MainWindow()
    install_error_hook(window)
    smoke = Smoke(app, window, args)
    window.show()
    QTimer.singleShot(0, smoke.shown)  # runs once the event loop has shown the window
    QTimer.singleShot(int(args.timeout * 1000), smoke.timed_out)
    code = app.exec()
    for failure in smoke.failures:
        smoke.say(f"FAIL {failure}")
    ok = code == 0 and not smoke.failures
    smoke.say(f"{'passed' if ok else 'FAILED'} after {process_age():.2f} s")
    return 0 if ok else 1
