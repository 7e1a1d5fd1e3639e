"""`bench speed --quick` compares the Chorus trainer with a bare loop and a DataLoader loop."""
from __future__ import annotations

import json

import pytest

from engine.bench.speed import repeat_steps, steps_per_repeat
from engine.cli import main


@pytest.mark.slow
def test_quick_speed_bench_prints_ratios_for_every_member(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["bench", "speed", "--quick", "--ablation", "--device", "cpu", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document["members"]) == {"dcgan", "vae", "diffusion", "judge"}
    for row in document["members"].values():
        assert row["steps_per_repeat"] == 5  # --quick: no lengthening
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


def test_a_repeat_lasts_at_least_the_minimum_but_never_beyond_a_checkpoint_interval():
    timed = []

    def seconds_for(rate):  # a member doing `rate` steps per second, timed once
        return lambda n: timed.append(n) or n / rate

    assert repeat_steps(seconds_for(135.0), 40, 1.0, 250) == 135  # the judge on the CPU: 0.3 s → 1 s
    assert timed == [40]
    assert repeat_steps(seconds_for(22.0), 40, 1.0, 250) == 40  # dcgan: 40 steps already take 1.8 s
    assert repeat_steps(seconds_for(5000.0), 40, 1.0, 250) == 250  # capped at the checkpoint interval
    timed.clear()
    assert repeat_steps(seconds_for(135.0), 250, 1.0, 250) == 250 and timed == []  # a GPU's 250: not timed
    assert repeat_steps(seconds_for(135.0), 5, 0.0, 250) == 5 and timed == []  # --quick
    assert steps_per_repeat({"vae": {"steps_per_repeat": 40}, "judge": {"steps_per_repeat": 40}}) == "40"
    assert steps_per_repeat({"vae": {"steps_per_repeat": 40}, "judge": {"steps_per_repeat": 135}}) == "vae 40, judge 135"
