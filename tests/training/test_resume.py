"""Resuming continues the same loss curve and ends with the same weights as one straight run."""
from __future__ import annotations

import json

import pytest
import torch

from engine.session import Session
from engine.training.control import Control
from engine.training.events import CheckpointSaved, Finished, PreviewReady, StepLogged


def losses_by_member_step(run_path):
    records = [json.loads(line) for line in (run_path / "metrics.jsonl").read_text().splitlines()]
    return {(r["member"], r["step"]): {k: v for k, v in r.items() if k not in ("member", "step", "time")}
            for r in records}


def final_weights(session):
    return {f"{name}.{net_name}.{key}": value for name, member in session.members.items()
            for net_name, net in member.networks().items() for key, value in net.state_dict().items()}


def test_resume_continues_losses_where_it_stopped(tiny_config, tmp_path):
    config = tiny_config(steps=40)
    straight = Session.create(config, tmp_path / "straight")
    straight.train(40)

    first = Session.create(config, tmp_path / "split")
    first.train(20)
    resumed = Session.open(tmp_path / "split")
    assert resumed.step == 20
    resumed.train(40)

    a, b = losses_by_member_step(tmp_path / "straight"), losses_by_member_step(tmp_path / "split")
    assert a.keys() == b.keys() and len(a) == 4 * 40
    for key in a:
        for name, value in a[key].items():
            assert b[key][name] == pytest.approx(value, rel=1e-5, abs=1e-5), (key, name)
    wa, wb = final_weights(straight), final_weights(resumed)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_same_seed_and_config_give_the_same_losses(tiny_config, tmp_path):
    config = tiny_config(["dcgan", "vae"], steps=6)
    Session.create(config, tmp_path / "a").train(6)
    Session.create(config, tmp_path / "b").train(6)
    assert losses_by_member_step(tmp_path / "a") == losses_by_member_step(tmp_path / "b")


def test_trainer_emits_events_and_keeps_the_last_checkpoints(tiny_config, tmp_path):
    config = tiny_config(["vae", "judge"], steps=10, checkpoint_every=2, keep_checkpoints=3,
                         preview_every=5, log_every=5)
    events = []
    Session.create(config, tmp_path / "run").train(10, [events.append])
    logged = [e for e in events if isinstance(e, StepLogged)]
    assert [(e.member, e.step) for e in logged] == [("vae", 5), ("judge", 5), ("vae", 10), ("judge", 10)]
    assert all(e.images_per_s > 0 for e in logged)
    previews = [e for e in events if isinstance(e, PreviewReady)]
    assert [(p.member, p.step) for p in previews] == [("vae", 5), ("vae", 10)]  # the judge cannot sample
    assert previews[0].images.dtype.name == "uint8" and previews[0].images.shape == (16, 16, 16, 1)
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2, 4, 6, 8, 10]
    assert isinstance(events[-1], Finished) and events[-1].reason == "done"
    kept = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert kept == ["step-0000006", "step-0000008", "step-0000010"]
    assert (tmp_path / "run" / "samples" / "vae-step-0000010.png").exists()


def test_stop_flag_ends_training_with_a_checkpoint(tiny_config, tmp_path):
    control = Control()
    seen = []

    def stop_after_three(event):
        if isinstance(event, StepLogged):
            seen.append(event.step)
            if event.step == 3:
                control.request_stop()

    session = Session.create(tiny_config(["vae"], steps=100), tmp_path / "run")
    finished = session.train(100, [stop_after_three], control)
    assert finished.reason == "stopped" and finished.step == 3
    assert session.run.latest_checkpoint().name == "step-0000003"
    assert Session.open(tmp_path / "run").step == 3


def test_pause_holds_training_until_resumed(tiny_config, tmp_path):
    import threading

    control = Control()
    reached = threading.Event()

    def pause_at_two(event):
        if isinstance(event, StepLogged) and event.step == 2 and not reached.is_set():
            control.request_pause()
            reached.set()

    session = Session.create(tiny_config(["vae"], steps=5), tmp_path / "run")
    worker = threading.Thread(target=session.train, args=(5, [pause_at_two], control))
    worker.start()
    assert reached.wait(30)
    worker.join(0.3)
    assert worker.is_alive() and session.step == 2  # held at the pause
    control.request_resume()
    worker.join(30)
    assert not worker.is_alive() and session.step == 5
