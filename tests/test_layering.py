"""The layers are a checked fact: importing all of the engine loads no Qt, and pyproject.toml's
import-linter contracts hold (docs/architecture.md, "Layers")."""
from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import engine

ROOT = Path(__file__).resolve().parent.parent


def test_engine_imports_no_qt():
    modules = [m.name for m in pkgutil.walk_packages(engine.__path__, "engine.")]
    assert len(modules) > 15
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'shiboken6'))\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_contracts_hold():
    """`lint-imports` (the test extra installs it): the engine never imports the GUI, engine and GUI
    layers in their order, no cycles between the parts of either."""
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert command, "lint-imports is missing: install the test extra (pip install -e '.[test]')"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
