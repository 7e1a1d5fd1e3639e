"""The frozen build, made once per test session by packaging/build.sh when it is missing or older than
the sources it is built from. Deselect these tests with ``-m "not frozen"`` (CI runs them)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD_TIMEOUT_S = 1800
SOURCES = ["main.py", "pyproject.toml", "engine", "gui", "resources", "packaging/chorus.spec",
           "packaging/build.sh", "packaging/linux"]
TIMINGS: list[str] = []  # printed at the end of the session (the CI log keeps them)


@dataclass(frozen=True)
class FrozenBuild:
    app: Path
    deb: Path
    tarball: Path
    version: str
    log: str = ""
    timings: list[str] = field(default_factory=list)


def newest_source_mtime() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts]
        newest = max([newest, *(p.stat().st_mtime for p in files)])
    return newest


def artifacts(version: str) -> tuple[Path, Path, Path]:
    dist = ROOT / "dist"
    return (dist / "Chorus" / "Chorus", dist / f"chorus_{version}_amd64.deb",
            dist / f"chorus-{version}-linux-x86_64.tar.gz")


@pytest.fixture(scope="session")
def frozen_build() -> FrozenBuild:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    paths = artifacts(version)
    newest = newest_source_mtime()
    if all(p.exists() and p.stat().st_mtime >= newest for p in paths):
        TIMINGS.append("frozen build: up to date, not rebuilt")
        return FrozenBuild(*paths, version)
    started = time.monotonic()
    result = subprocess.run(["bash", "packaging/build.sh"], cwd=ROOT, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S, env={**os.environ, "PYTHON": sys.executable})
    lines = [line for line in result.stderr.splitlines() if line.startswith(("== ", "dist/"))]
    TIMINGS.extend([f"frozen build: {line}" for line in lines]
                   + [f"frozen build: {time.monotonic() - started:.0f} s as seen by pytest"])
    if result.returncode != 0:
        pytest.fail(f"packaging/build.sh exited {result.returncode}:\n{result.stderr[-6000:]}")
    return FrozenBuild(*paths, version, result.stderr, lines)


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("frozen build and checks")
        for line in TIMINGS:
            terminalreporter.write_line(line)
