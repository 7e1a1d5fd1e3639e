"""The self-test (what `Chorus --self-test` runs), from the source tree."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["environment", "bundled data", "train", "sample", "fuse", "checkpoint", "export png", "evaluate",
         "explore", "cuda graphs"]


def test_self_test_passes_every_step_and_leaves_the_user_cache_alone(tmp_path, monkeypatch):
    from engine.metrics.features import CACHE_ENV, cache_dir
    from engine.self_test import CACHE_ENV as SELF_TEST_CACHE_ENV, run_self_test

    assert SELF_TEST_CACHE_ENV == CACHE_ENV
    monkeypatch.delenv(CACHE_ENV, raising=False)
    user_cache = cache_dir()
    before = sorted(user_cache.rglob("*")) if user_cache.exists() else []
    out = io.StringIO()
    passed, results = run_self_test(device="cpu", steps=2, out=out, keep=tmp_path / "work")
    text = out.getvalue()
    assert passed, text
    assert [r.name for r in results] == STEPS and all(r.ok for r in results)
    assert "torch.cuda.is_available()=" in text and "device cpu" in text
    assert results[-1].detail == "not run: no CUDA graphs on cpu"
    assert text.strip().splitlines()[-1].startswith("self-test passed in ")
    assert (tmp_path / "work" / "export.png").is_file()
    assert list((tmp_path / "work" / "cache").rglob("*.safetensors")), "the tiny judge went to the test's cache"
    assert CACHE_ENV not in os.environ
    assert (sorted(user_cache.rglob("*")) if user_cache.exists() else []) == before


def test_a_failed_step_is_reported_and_the_steps_that_need_it_are_skipped(monkeypatch):
    from engine.self_test import SelfTest, run_self_test

    def broken(self):
        raise RuntimeError("no data for you")

    monkeypatch.setattr(SelfTest, "train", broken)
    out = io.StringIO()
    passed, results = run_self_test(device="cpu", out=out)
    assert not passed
    failed = {r.name: r.detail for r in results if not r.ok}
    assert "RuntimeError: no data for you" in failed["train"]
    assert set(failed) == set(STEPS[2:]) and failed["evaluate"].startswith("skipped")
    assert "FAILED (8 of 10 steps)" in out.getvalue()


def test_main_wires_the_self_test_flag(tmp_path):
    result = subprocess.run([sys.executable, "main.py", "--self-test", "--steps", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--steps must be at least 2" in result.stderr


@pytest.mark.parametrize("flag", ["--self-test", "--smoke-gui"])
def test_both_checks_have_help(flag):
    result = subprocess.run([sys.executable, "main.py", flag, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0 and f"chorus {flag}" in result.stdout
