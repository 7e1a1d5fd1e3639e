"""The GUI smoke check that packaged builds run, here from the source tree (no build needed)."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.packaging.conftest import ROOT


def test_smoke_gui_shows_the_window_trains_in_the_child_and_exits_0(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CHORUS_TRAIN_THREADS": "1"}
    result = subprocess.run([sys.executable, "main.py", "--smoke-gui", "--train-steps", "2", "--screenshot",
                             str(tmp_path / "w.png"), "--timeout", "240"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "main window shown" in result.stdout and "child process trained to step 2" in result.stdout
    assert (tmp_path / "w.png").is_file() and (tmp_path / "w-training.png").is_file()


def test_smoke_gui_fails_when_the_window_does_not_finish_in_time(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CHORUS_TRAIN_THREADS": "1"}
    result = subprocess.run([sys.executable, "main.py", "--smoke-gui", "--train-steps", "100000", "--timeout", "3"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "gave up after 3.0 s" in result.stdout, result.stdout + result.stderr
