"""The packaged app works, not just builds: its self-test, its window (shown within 5 s, training in
its spawned child process) and, where we may, the .deb installed, run and removed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.packaging.conftest import TIMINGS

pytestmark = pytest.mark.frozen

STARTUP_LIMIT_S = 5.0
EXCLUDED = ["triton", "PyQt5", "PyQt6", "PySide2", "tkinter", "matplotlib", "IPython", "tensorboard", "pytest"]


def timed_run(args: list[str], timeout: float, **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    return result, time.monotonic() - started


def test_build_made_one_folder_with_one_qt_binding_and_the_installers(frozen_build):
    internal = frozen_build.app.parent / "_internal"
    assert os.access(frozen_build.app, os.X_OK)
    assert (internal / "PySide6").is_dir() and (internal / "resources" / "fashion-mnist" / "LICENSE").is_file()
    assert (internal / "resources" / "icons" / "chorus.png").is_file()
    present = [name for name in EXCLUDED if (internal / name).exists()]
    assert not present, f"excluded packages were bundled: {present}"
    assert frozen_build.deb.stat().st_size > 100e6 and frozen_build.tarball.stat().st_size > 100e6
    info = subprocess.run(["dpkg-deb", "--field", str(frozen_build.deb), "Package", "Version", "Architecture"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Package: chorus" in info and f"Version: {frozen_build.version}" in info and "amd64" in info


def test_frozen_self_test_passes_and_reports_the_device(frozen_build):
    result, seconds = timed_run([str(frozen_build.app), "--self-test"], timeout=900)
    TIMINGS.append(f"dist/Chorus/Chorus --self-test: exit {result.returncode} in {seconds:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(frozen)" in result.stdout and "torch.cuda.is_available()=" in result.stdout
    assert "self-test passed" in result.stdout and "FAIL" not in result.stdout


def test_frozen_window_shows_within_5_s_trains_in_its_child_process_and_closes(frozen_build, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CHORUS_TRAIN_THREADS": "1"}
    started = time.monotonic()
    proc = subprocess.Popen([str(frozen_build.app), "--smoke-gui", "--train-steps", "2", "--screenshot", str(shot),
                             "--timeout", "240"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    lines, shown_after = [], None
    try:
        for line in proc.stdout:
            lines.append(line)
            if shown_after is None and "main window shown" in line:
                shown_after = time.monotonic() - started
        code = proc.wait()
    finally:
        watchdog.cancel()
    text = "".join(lines)
    inside = re.search(r"main window shown ([0-9.]+) s", text)
    seen = "never" if shown_after is None else f"{shown_after:.2f} s after launch"
    TIMINGS.append(f"frozen window shown {seen} (the app says {inside and inside.group(1)} s); "
                   f"smoke check exit {code} after {time.monotonic() - started:.1f} s")
    assert code == 0, text
    assert shown_after is not None and shown_after < STARTUP_LIMIT_S, text
    assert "child process trained to step 2" in text
    for path in (shot, shot.with_name("window-training.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def _can_install() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("dpkg") is not None


@pytest.mark.skipif(not _can_install(), reason="installing a .deb needs root and dpkg")
def test_deb_installs_runs_its_self_test_and_uninstalls_cleanly(frozen_build):
    installed = [Path("/opt/chorus"), Path("/usr/bin/chorus"), Path("/usr/share/applications/chorus.desktop"),
                 Path("/usr/share/icons/hicolor/256x256/apps/chorus.png")]
    if subprocess.run(["dpkg", "-s", "chorus"], capture_output=True).returncode == 0:
        subprocess.run(["dpkg", "-r", "chorus"], capture_output=True, timeout=600)
    result, seconds = timed_run(["dpkg", "-i", str(frozen_build.deb)], timeout=900)
    TIMINGS.append(f"dpkg -i: exit {result.returncode} in {seconds:.1f} s")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert all(p.exists() for p in installed), [str(p) for p in installed if not p.exists()]
        assert os.path.realpath("/usr/bin/chorus") == "/opt/chorus/Chorus"
        assert "Exec=/opt/chorus/Chorus" in installed[2].read_text() and "Icon=chorus" in installed[2].read_text()
        # /usr/bin/chorus itself: a `pip install -e .` puts another `chorus` earlier on PATH
        run, seconds = timed_run(["/usr/bin/chorus", "--self-test"], timeout=900)
        TIMINGS.append(f"/usr/bin/chorus --self-test (installed): exit {run.returncode} in {seconds:.1f} s")
        assert run.returncode == 0 and "(frozen)" in run.stdout, run.stdout + run.stderr
    finally:
        removed, seconds = timed_run(["dpkg", "-r", "chorus"], timeout=600)
        TIMINGS.append(f"dpkg -r chorus: exit {removed.returncode} in {seconds:.1f} s")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert not any(p.exists() or p.is_symlink() for p in installed), [str(p) for p in installed if p.exists()]
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "chorus"], capture_output=True, text=True)
    assert status.returncode != 0 or "not-installed" in status.stdout, status.stdout
