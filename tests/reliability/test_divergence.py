"""A member whose loss or gradient turns NaN/Inf is rolled back with a lower learning rate, or paused
after repeated failures; the other members keep training."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch

from engine.cli import main
from engine.members.vae import VAE
from engine.session import Session
from engine.training import health as health_module
from engine.training.events import Finished, MemberFailed, StepLogged
from engine.training.health import weights_finite
from engine.training.trainer import Trainer
from tests.test_cli import write_config

pytestmark = pytest.mark.reliability


@pytest.fixture(autouse=True)
def frequent_snapshots(monkeypatch):
    monkeypatch.setattr(health_module, "SNAPSHOT_EVERY", 4)
    monkeypatch.setattr(health_module, "SNAPSHOT_BUDGET", 1e9)  # no spacing in time: exact steps


def poison_weights_at(member, steps: set[int]) -> None:
    """Before the member's step number s in ``steps`` (1-based), set one of its weights to NaN."""
    original = member.train_step

    def poisoned(batch):
        if member.step + 1 in steps:
            with torch.no_grad():
                next(iter(member.trained_networks().values())).parameters().__next__().view(-1)[0] = math.nan
        return original(batch)

    member.train_step = poisoned


def by_kind(events, kind):
    return [e for e in events if isinstance(e, kind)]


def lr_of(member) -> float:
    return next(iter(member.optimizers.values())).param_groups[0]["lr"]


def test_nan_loss_rolls_that_member_back_with_a_lower_lr_and_the_others_go_on(tiny_config, tmp_path):
    session = Session.create(tiny_config(["dcgan", "vae"], steps=12, checkpoint_every=100), tmp_path / "run")
    vae = session.members["vae"]
    lr = lr_of(vae)
    poison_weights_at(vae, {7})
    events = []
    finished = session.train(12, [events.append])
    failed = by_kind(events, MemberFailed)
    assert [(f.member, f.step, f.action) for f in failed] == [("vae", 7, "rolled back")]
    assert "NaN or Inf" in failed[0].message and "state at step 4" in failed[0].message
    assert lr_of(vae) == pytest.approx(lr * 0.5) and weights_finite(vae) and vae.step == 12
    logged = {m: [e.step for e in by_kind(events, StepLogged) if e.member == m] for m in ("dcgan", "vae")}
    assert logged["dcgan"] == list(range(1, 13))
    assert logged["vae"] == [s for s in range(1, 13) if s != 7]
    assert all(math.isfinite(v) for e in by_kind(events, StepLogged) for v in e.losses.values())
    assert finished.reason == "done"
    again = Session.open(tmp_path / "run")  # the lowered learning rate is in the checkpoint
    assert lr_of(again.members["vae"]) == pytest.approx(lr * 0.5)


def test_nan_gradient_with_a_finite_loss_is_caught_and_rolled_back(tiny_config, tmp_path):
    session = Session.create(tiny_config(["vae"], steps=8, checkpoint_every=100), tmp_path / "run")
    vae = session.members["vae"]
    weight = next(vae.net.parameters())
    hook = weight.register_hook(lambda grad: grad * math.inf if vae.step == 5 else grad)  # step 6's backward
    events = []
    session.train(8, [events.append])
    hook.remove()
    failed = by_kind(events, MemberFailed)
    assert [(f.step, f.action) for f in failed] == [(7, "rolled back")]  # the first loss that sees it
    assert weights_finite(vae) and vae.step == 8


def test_repeated_divergence_pauses_the_member_and_resume_tries_it_again(tiny_config, tmp_path):
    session = Session.create(tiny_config(["dcgan", "vae"], steps=12, checkpoint_every=100), tmp_path / "run")
    poison_weights_at(session.members["vae"], set(range(3, 100)))
    events = []
    finished = session.train(12, [events.append])
    failed = by_kind(events, MemberFailed)
    assert [f.action for f in failed] == ["rolled back"] * 3 + ["paused"]
    assert "paused for the rest of this run" in failed[-1].message
    assert finished == Finished(12, "done") and session.members["dcgan"].step == 12
    # steps 3, 4 and 5 were rolled back, step 6 paused it: its count stays at 6, its weights are finite
    assert session.members["vae"].step == 6 and weights_finite(session.members["vae"])
    resumed = Session.open(tmp_path / "run")
    assert resumed.step == 6  # the paused member is behind; the others wait for it in lock-step
    events = []
    resumed.train(12, [events.append])
    assert {e.member for e in by_kind(events, StepLogged)} == {"vae"}
    records = resumed.run.read_metrics()
    assert [r["step"] for r in records if r["member"] == "dcgan"] == list(range(1, 13))  # not truncated
    assert resumed.members["vae"].step == 12 and resumed.members["dcgan"].step == 12


def test_every_member_paused_ends_the_run_as_failed(tiny_config, tmp_path):
    session = Session.create(tiny_config(["vae"], steps=30, checkpoint_every=100), tmp_path / "run")
    poison_weights_at(session.members["vae"], set(range(1, 100)))
    events = []
    finished = session.train(30, [events.append])
    assert finished.reason == "failed" and by_kind(events, MemberFailed)[-1].action == "paused"
    assert session.run.latest_checkpoint() is not None


def test_on_a_gpu_losses_are_checked_only_at_log_points(tiny_config, tmp_path, monkeypatch):
    """The device path: no per-step host sync; a NaN is caught at the next log point and the
    member goes back to the copy taken at the previous one."""
    session = Session.create(tiny_config(["dcgan", "vae"], steps=12, log_every=4, checkpoint_every=100),
                             tmp_path / "run")
    poison_weights_at(session.members["vae"], {6})
    events = []
    trainer = Trainer(session, [events.append])
    trainer.check_each_step = False  # what a CUDA or MPS device gets
    reads = []
    real_item = torch.Tensor.item

    def item(self):  # the optimizers read their own CPU step counters; count only the trainer's reads
        if sys._getframe(1).f_code.co_filename.endswith(os.path.join("training", "trainer.py")):
            reads.append(1)
        return real_item(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    trainer.run(12)
    assert not reads  # no per-step host sync on the hot path
    failed = by_kind(events, MemberFailed)
    assert [(f.member, f.step, f.action) for f in failed] == [("vae", 8, "rolled back")]
    assert "state at step 4" in failed[0].message
    logged = [(e.member, e.step) for e in by_kind(events, StepLogged)]
    assert logged == [("dcgan", 4), ("vae", 4), ("dcgan", 8), ("dcgan", 12), ("vae", 12)]
    assert weights_finite(session.members["vae"])


def test_cli_prints_the_member_failure_and_finishes(tiny_npz, tmp_path, monkeypatch, capsys):
    original = VAE.train_step

    def poisoned(self, batch):
        if self.step == 3:
            with torch.no_grad():
                next(self.net.parameters()).view(-1)[0] = math.inf
        return original(self, batch)

    monkeypatch.setattr(VAE, "train_step", poisoned)
    assert main(["train", "--data", str(tiny_npz), "--size", "16", "--steps", "6", "--out", str(tmp_path / "r"),
                 "--device", "cpu", "--config", str(write_config(tmp_path, ("dcgan", "vae"))), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "chorus: member vae failed at step 4: its loss became NaN or Inf" in err and "rolled back" in err


def test_rollback_copies_are_spaced_to_stay_within_their_time_budget(tiny_config, tmp_path, monkeypatch):
    from engine.training.health import Health

    session = Session.create(tiny_config(["vae"], steps=1), tmp_path / "run")
    vae = session.members["vae"]
    health = Health([vae], lambda event: None)
    health.start(vae, 0)
    assert health.snapshot_due(vae, 4)  # the test budget allows a copy as soon as 4 steps passed
    monkeypatch.setattr(health_module, "SNAPSHOT_BUDGET", 1e-9)  # a copy may use a billionth of the time
    health.snapshot(vae, 4)
    assert not health.snapshot_due(vae, 1000)  # steps alone do not make the next one due
