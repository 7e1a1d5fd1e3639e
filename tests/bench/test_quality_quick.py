"""`bench quality --quick` runs the whole protocol end to end (a pipeline check, not a score)."""
from __future__ import annotations

import json

import pytest

from engine.cli import main


@pytest.mark.slow
def test_quick_quality_bench_measures_every_member_and_fusion(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "quality", "--quick", "--equal-compute", "--out", "q.json"]) == 0
    document = json.loads((tmp_path / "q.json").read_text())
    report, summary = document["report"], document["summary"]
    assert set(report["members"]) == {"dcgan", "vae", "diffusion"}
    assert set(report["fusions"]) == {"average", "weighted-average", "mixture", "vote", "vote-ratio", "vote-fitted", "vote-even", "vote-committee",
                                "vote-judge", "vote-gan-judge", "refine", "guide", "guide-judge", "soup"}
    assert summary["steps"] == 20 and summary["best_member"] in report["members"]
    assert summary["fd_ratio_fusion_to_member"] == pytest.approx(summary["best_fusion_fd"] / summary["best_member_fd"])
    for table in (report["members"], report["fusions"]):
        assert all(row["samples_per_s"] > 0 for row in table.values())
    out = capsys.readouterr().out
    assert "| fusion `vote` |" in out and "best member:" in out
    # equal compute: each generator alone for the ensemble's training time, the diffusion also
    # sampled with the fusion's sampling time
    alone = summary["equal_compute"]
    assert [row["kind"] for row in alone] == ["dcgan", "vae", "diffusion", "diffusion"]
    assert all(row["steps"] >= 1 and row["train_seconds"] >= 0.9 * summary["train_seconds"] for row in alone)
    assert alone[-2]["sample_steps"] is None and alone[-1]["sample_steps"] >= 1
    assert summary["fd_ratio_fusion_to_equal_compute"] == pytest.approx(
        summary["best_fusion_fd"] / min(row["fd"] for row in alone))
    assert "best fusion ÷ best equal-compute member" in out
    # the equal-steps verdict comes first: an interrupted equal-compute run does not lose it
    assert out.index("best member:") < out.index("| equal compute |")
