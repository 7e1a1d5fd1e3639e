"""`bench speed --quick` compares the Chorus trainer with a bare loop and a DataLoader loop."""
from __future__ import annotations

import json

import pytest

from engine.cli import main


@pytest.mark.slow
def test_quick_speed_bench_prints_ratios_for_every_member(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["bench", "speed", "--quick", "--ablation", "--device", "cpu", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document["members"]) == {"dcgan", "vae", "diffusion", "judge"}
    for row in document["members"].values():
        assert row["chorus_images_per_s"] > 0 and row["bare_images_per_s"] > 0 and row["dataloader_images_per_s"] > 0
        assert row["chorus_vs_bare"] == pytest.approx(row["chorus_images_per_s"] / row["bare_images_per_s"])
        assert row["ablation + fused Adam_images_per_s"] > 0  # the ablation's variants ran (compile: GPU only)
        assert "ablation + CUDA graphs" not in row["warmup_s"]
        assert "ablation + whole-step graph" not in row["warmup_s"]
        assert 0 < row["ops_per_step"]["trainer_adds"] < 1 < row["ops_per_step"]["member_step"]  # counted on the CPU
    assert {"fusion average", "fusion mixture", "fusion vote"} <= set(document["sampling"])
    assert document["peak"]["rss_mib"] > 0
    printed = capsys.readouterr().out
    assert "Chorus ÷ bare" in printed and "+ fused Adam" in printed and "÷ dataloader loop" in printed
    assert "operations per step" in printed
