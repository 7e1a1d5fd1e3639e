"""The equal-compute rows' deadline: training stops once the wall-clock budget is spent."""
from __future__ import annotations

import time

from engine.bench.equal_compute import Deadline, solo_config, train_alone


def test_a_deadline_stops_when_its_time_is_spent_or_when_asked():
    assert Deadline(seconds=0.0).should_stop()
    later = Deadline(seconds=60.0)
    assert not later.should_stop()
    later.request_stop()
    assert later.should_stop()


def test_a_member_alone_trains_until_the_deadline(tmp_path):
    from tests.conftest import train_tiny_run

    session = train_tiny_run(tmp_path, steps=2, checkpoint_every=2)
    assert solo_config(session.config, "vae", 10).kinds() == ("vae",)
    started = time.perf_counter()
    solo, spent = train_alone(session, "vae", 1.0, tmp_path / "alone")
    assert solo.step >= 2 and list(solo.members) == ["vae"]
    assert 1.0 <= spent < 30 and time.perf_counter() - started >= 1.0
    assert solo.member("vae").p == session.member("vae").p  # the ensemble's settings


def test_a_reopened_run_knows_the_training_time_its_checkpoint_recorded(tmp_path):
    import json

    from engine.session import Session
    from tests.conftest import train_tiny_run

    trained = train_tiny_run(tmp_path, steps=2, checkpoint_every=2)
    state = json.loads((trained.checkpoint / "state.json").read_text())
    reopened = Session.open(trained.run.path)
    assert reopened.recorded_seconds == state["elapsed"] > 0  # what `bench quality --run R --equal-compute` uses


def test_fusion_rows_are_picked_by_label_or_strategy_name():
    from engine.evaluation import fusion_plan

    assert fusion_plan(None) is None
    assert fusion_plan("vote, vote-even,guide") == {"vote": ("vote", {"k": 4}), "vote-even": ("vote", {"k": 4, "shares": "even"}),
                                                  "guide": ("guide", {})}
