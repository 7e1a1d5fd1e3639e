"""Pace by gain: reviews move the generators' time to the one that gains most per second, within the
configured budget, and a resumed run follows exactly the schedule it recorded."""
import itertools

import pytest
import torch

from engine.errors import UserError
from engine.members.registry import run_config
from engine.session import Session
from engine.training.pace import Schedule
from engine.training.pacer import FLOOR, Pacer
from tests.conftest import tiny_config_dict
from tests.training.test_resume import final_weights


def spent(pacer: Pacer, seconds: dict[str, float], steps: dict[str, int]) -> None:
    for name, total in seconds.items():
        for _ in range(steps[name]):
            pacer.spend(name, total / steps[name])


def test_a_schedule_counts_each_stretch_at_its_own_pace():
    schedule = Schedule.fixed(0.5).from_step(4, 2.0).from_step(10, 0.25)
    assert [schedule.quota(r) for r in (0, 4, 5, 10, 14)] == [0, 2, 4, 14, 15]
    assert schedule.rounds_done(0) == 0
    for steps in range(1, 40):
        rounds = schedule.rounds_done(steps)
        assert schedule.quota(rounds) <= steps < schedule.quota(rounds + 1), steps
    assert schedule.from_step(4, 1.0).segments == ((0, 0.5), (4, 1.0))  # a later decision replaces
    assert Schedule.from_json(schedule.to_json(), 1.0) == schedule
    assert Schedule.from_json("damaged", 1.5) == Schedule.fixed(1.5)


def test_the_first_review_only_measures_and_later_ones_follow_the_gain():
    pacer = Pacer({"a": 1.0, "b": 1.0})
    spent(pacer, {"a": 10.0, "b": 10.0}, {"a": 10, "b": 10})
    assert pacer.review({"a": 100.0, "b": 100.0}, {"a": 1.0, "b": 1.0}) == {"a": 1.0, "b": 1.0}
    spent(pacer, {"a": 10.0, "b": 10.0}, {"a": 10, "b": 10})
    paces = pacer.review({"a": 50.0, "b": 100.0}, {"a": 1.0, "b": 1.0})  # a halved, b stalled
    assert paces["a"] > 1.0 > paces["b"] > 0
    target_b = FLOOR  # b gained nothing: its target is the floor; the new share is halfway to it
    assert paces["b"] == pytest.approx(2 * (0.5 + target_b) / 2, abs=0.05)
    assert paces["a"] + paces["b"] == pytest.approx(2.0, abs=0.05)  # same cost per step: the budget holds


def test_the_budget_is_in_seconds_so_a_cheap_member_gets_more_steps_for_its_share():
    pacer = Pacer({"cheap": 2.0, "dear": 0.5})
    for _ in range(2):
        spent(pacer, {"cheap": 10.0, "dear": 10.0}, {"cheap": 100, "dear": 25})  # 0.1 s and 0.4 s a step
        paces = pacer.review({"cheap": 10.0, "dear": 100.0} if not pacer.distances else {"cheap": 10.0, "dear": 50.0},
                             {"cheap": 2.0, "dear": 0.5})
    assert paces["dear"] > 0.5 and paces["cheap"] < 2.0  # the dear member gained: it gets time
    budget = 2.0 * 0.1 + 0.5 * 0.4
    assert paces["cheap"] * 0.1 + paces["dear"] * 0.4 == pytest.approx(budget, abs=0.01)


def test_a_member_far_behind_the_best_counts_for_less_than_its_gain_alone():
    pacer = Pacer({"best": 1.0, "far": 1.0})
    for distances in ({"best": 10.0, "far": 1000.0}, {"best": 8.0, "far": 500.0}):  # far gains more, is 60× worse
        spent(pacer, {"best": 1.0, "far": 1.0}, {"best": 1, "far": 1})
        paces = pacer.review(distances, {"best": 1.0, "far": 1.0})
    assert paces["best"] > paces["far"]


def test_no_gain_anywhere_keeps_the_paces():
    pacer = Pacer({"a": 2.0, "b": 0.5})
    for _ in range(2):
        spent(pacer, {"a": 1.0, "b": 1.0}, {"a": 4, "b": 1})
        paces = pacer.review({"a": 10.0, "b": 20.0}, {"a": 1.5, "b": 0.75})
    assert paces == {"a": 1.5, "b": 0.75}


def test_an_unknown_pacing_is_refused(tiny_npz):
    with pytest.raises(UserError, match="pacing must be one of fixed, gain"):
        run_config(tiny_config_dict(tiny_npz, ["vae"], pacing="fast"))


@pytest.fixture
def steady_clock(monkeypatch):
    """Every optimizer step takes one 'second': the pacer's decisions no longer depend on the machine."""
    import engine.training.trainer as trainer

    ticks = itertools.count()

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            return float(next(ticks) % 2)  # start 0, end 1: one second a step

    monkeypatch.setattr(trainer, "time", Clock)


def test_a_gain_paced_run_logs_its_reviews_and_a_resume_follows_its_schedule(tiny_npz, tmp_path, steady_clock,
                                                                              monkeypatch):
    import engine.metrics.probe as probe
    from engine.metrics.features import JudgeRecipe

    monkeypatch.setattr(probe, "PROBE_JUDGE", JudgeRecipe(steps=20, batch_size=16))
    raw = tiny_config_dict(tiny_npz, ["dcgan", "vae", "judge"], steps=30, checkpoint_every=10, pacing="gain",
                           review_every=10)
    config = run_config(raw)
    straight = Session.create(config, tmp_path / "straight")
    straight.train(30)
    reviews = [r for r in straight.run.read_metrics() if "pace" in r]
    assert sorted({r["step"] for r in reviews}) == [10, 20]  # none at the run's end
    assert {r["member"] for r in reviews} == {"dcgan", "vae"}  # the judge is not a generator: its pace stays
    assert all(r["probe"] > 0 for r in reviews)
    assert straight.paces["judge"] == Schedule.fixed(1.0)
    assert any(len(straight.paces[n].segments) > 1 for n in ("dcgan", "vae"))  # the reviews moved time
    assert {n: m.step for n, m in straight.members.items()} == {n: s.quota(30) for n, s in straight.paces.items()}

    first = Session.create(config, tmp_path / "split")
    first.train(15)
    resumed = Session.open(tmp_path / "split")
    assert resumed.step == 15 and resumed.paces == first.paces
    resumed.train(30)
    assert resumed.paces == straight.paces
    assert {n: m.step for n, m in resumed.members.items()} == {n: m.step for n, m in straight.members.items()}
    straight_weights, resumed_weights = final_weights(straight), final_weights(resumed)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_a_probe_out_of_memory_keeps_the_paces_and_says_so(tiny_npz, tmp_path, monkeypatch):
    from engine.training.events import MemberFailed

    config = run_config(tiny_config_dict(tiny_npz, ["dcgan", "vae"], steps=4, pacing="gain", review_every=2))
    session = Session.create(config, tmp_path / "run")

    def no_memory(names):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(session, "probe", no_memory)
    events = []
    finished = session.train(4, callbacks=[events.append])
    assert finished.reason == "done" and session.paces["dcgan"] == Schedule.fixed(1.0)
    assert any(isinstance(e, MemberFailed) and "probing" in e.message for e in events)
