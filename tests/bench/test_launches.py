"""Operations per training step, counted (engine/bench/launches.py): at Chorus's sizes a GPU step
costs about its number of kernel launches, so these counts are the trainer's speed contract in a
form CI can check without a GPU or timings."""
from __future__ import annotations

import pytest
import torch

from engine.accel import FastPaths
from engine.bench.launches import OpCounter, per_step
from engine.bench.loops import bare_step, device_batches
from engine.bench.speed import count_operations
from engine.data.dataset import to_signed_float
from engine.session import Session
from engine.training.trainer import Trainer

# The member's own step over the bare loop's, in operations: every member turns its uint8 batch into
# floats (1); the VAE logs its two loss terms (2 means) and the judge its accuracy (4 operations).
MOST_OVER_BARE = {"dcgan": 1, "vae": 3, "diffusion": 1, "judge": 5}


def test_the_counter_counts_kernels_and_host_reads_not_views():
    x = torch.ones(4, 4)
    with OpCounter() as ops:
        y = x.t().t().view(16).detach()  # views and metadata: no kernel
        total = (y + 1).sum()            # two kernels
        total.item()                     # a host read
    assert ops.total == 2 and ops.host_reads == 1
    assert set(ops.kernels) == {"aten.add.Tensor", "aten.sum.default"}


@pytest.mark.parametrize("kind", list(MOST_OVER_BARE))
def test_the_trainer_adds_under_one_operation_per_step(tiny_config, tmp_path, kind):
    # fused Adam, as on CUDA (one optimizer kernel, not one per parameter): the counts a GPU launches
    fast = FastPaths(fused_optimizer=True)
    session = Session.create(tiny_config([kind], log_every=10, checkpoint_every=10**6), tmp_path, fast=fast)
    session.train(3)
    member = session.members[kind]
    bare = bare_step(member)
    data = device_batches(to_signed_float(session.dataset.images), session.dataset.labels, member.config.batch_size)
    ops = count_operations(session, lambda: bare(*next(data)))
    # folding losses every 32 steps and one log point every 10: a fraction of an operation per step
    assert 0 < ops["trainer_adds"] < 1.0, ops
    assert ops["member_step"] == int(ops["member_step"]) > 20, ops  # the same operations every step
    assert ops["member_step"] <= ops["bare_same_paths"] + MOST_OVER_BARE[kind], ops
    # the CPU trainer reads each loss as it comes (free on a CPU); on a GPU only at log points
    assert ops["chorus_host_reads"] == len(member.train_step(member.draw_batch(session.dataset, 2)))


def test_as_on_a_gpu_the_trainer_reads_nothing_from_the_device_between_log_points(tiny_config, tmp_path):
    config = tiny_config(log_every=5, checkpoint_every=10**6)
    session = Session.create(config, tmp_path, fast=FastPaths(fused_optimizer=True))
    session.train(2)

    def run(steps):
        trainer = Trainer(session)
        trainer.check_each_step = False  # what a trainer on a GPU does: losses are read at log points only
        trainer.run(session.step + steps)

    operations, host_reads = per_step(run, 10)
    assert host_reads == 0 and operations > 100  # four members' steps, two log points, no reads
