"""The trainer's child-process entry point, run in this process with plain queues (Qt-free)."""
from __future__ import annotations

import queue
import threading

import pytest
import torch

from engine.members.registry import member_class
from tests.conftest import tiny_config_dict


@pytest.fixture(autouse=True)
def child_environment_restored(monkeypatch):
    """run_child sets its process's OpenMP policy and torch threads; here it runs in ours: undo it."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def drain(q: queue.Queue) -> list:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def test_child_sends_started_events_finished_and_done_last(tiny_npz, tmp_path):
    from engine.child import ChildDone, ChildStarted, TrainJob, run_child
    from engine.training.events import CheckpointSaved, Finished, StepLogged

    q: queue.Queue = queue.Queue()
    job = TrainJob(steps=4, config=tiny_config_dict(tiny_npz, ("vae",)), out=str(tmp_path / "run"), threads=1)
    run_child(job, q, threading.Event(), threading.Event(), threading.Event())
    items = drain(q)
    how = member_class("vae").fast_paths(torch.device("cpu")).describe()  # this CPU's auto paths (bf16 where it is native)
    assert items[0] == ChildStarted(str(tmp_path / "run"), 0, 4, (f"vae: {how} on cpu",))
    assert [e.step for e in items if isinstance(e, StepLogged)] == [1, 2, 3, 4]
    assert [e.step for e in items if isinstance(e, CheckpointSaved)] == [4]
    assert items[-2] == Finished(4, "done") and isinstance(items[-1], ChildDone)


def test_child_reports_bad_input_as_a_user_error_then_done(tmp_path):
    from engine.child import ChildDone, ChildFailed, TrainJob, run_child

    q: queue.Queue = queue.Queue()
    config = tiny_config_dict(tmp_path / "missing.npz", ("vae",))
    run_child(TrainJob(steps=4, config=config, out=str(tmp_path / "run")), q,
              threading.Event(), threading.Event(), threading.Event())
    failed, done = drain(q)
    assert isinstance(failed, ChildFailed) and failed.user_error and "not found" in failed.message
    assert isinstance(done, ChildDone) and not (tmp_path / "run").exists()


def test_child_announces_pause_and_resume_at_the_step_it_holds(tiny_npz, tmp_path):
    from engine.child import Paused, Resumed, TrainJob, run_child
    from engine.training.events import StepLogged

    q: queue.Queue = queue.Queue()
    stop, pause, resume = threading.Event(), threading.Event(), threading.Event()
    pause.set()  # paused before the first step: it waits there until resumed
    worker = threading.Thread(target=run_child, args=(TrainJob(steps=3, config=tiny_config_dict(
        tiny_npz, ("vae",)), out=str(tmp_path / "run"), threads=1), q, stop, pause, resume))
    worker.start()
    seen = []
    while not any(isinstance(item, Paused) for item in seen):
        seen.append(q.get(timeout=60))
    assert seen[-1] == Paused(0) and not any(isinstance(item, StepLogged) for item in seen)
    pause.clear()
    resume.set()
    worker.join(60)
    rest = drain(q)
    assert rest[0] == Resumed(0)
    assert [e.step for e in rest if isinstance(e, StepLogged)] == [1, 2, 3]


def test_child_stopped_before_it_starts_leaves_nothing_behind(tiny_npz, tmp_path):
    from engine.child import ChildDone, TrainJob, run_child

    q: queue.Queue = queue.Queue()
    stop = threading.Event()
    stop.set()
    run_child(TrainJob(steps=3, config=tiny_config_dict(tiny_npz, ("vae",)), out=str(tmp_path / "run")), q,
              stop, threading.Event(), threading.Event())
    assert [type(item) for item in drain(q)] == [ChildDone]
    assert not (tmp_path / "run").exists()


def test_a_final_save_that_failed_reaches_the_window_as_a_message(qtbot):
    from engine.training.events import Finished
    from gui.bridge import TrainingLink

    link = TrainingLink(job=None)  # only its dispatch: the process is never started
    saved, finished = [], []
    link.sig_save_failed.connect(lambda step, where, text: saved.append((step, where, text)))
    link.sig_finished.connect(lambda step, reason: finished.append((step, reason)))
    link._dispatch(Finished(7, "stopped", "No space left on device"))
    assert saved == [(7, "the final checkpoint", "No space left on device")] and finished == [(7, "stopped")]


def test_a_fast_path_that_fell_back_is_added_to_how_the_members_train(qtbot):
    from engine.child import ChildStarted
    from engine.training.events import MemberFailed
    from engine.training.trainer import COMPILE_OFF, STEP_GRAPH_OFF
    from gui.bridge import TrainingLink
    from gui.training_link import FAST_PATH_CHANGES

    assert FAST_PATH_CHANGES == (COMPILE_OFF, STEP_GRAPH_OFF)  # the GUI's copy (it does not import torch)
    link = TrainingLink(job=None)  # only its dispatch: the process is never started
    notes = []
    link.sig_notes.connect(notes.append)
    link._dispatch(ChildStarted("run", 0, 10, ("vae: fp32, fused optimizer, whole step as one CUDA graph on cuda",)))
    link._dispatch(MemberFailed("vae", 4, "its CUDA graph failed (…); training goes on without it", "step graph off"))
    link._dispatch(MemberFailed("vae", 6, "out of memory at batch size 64; retrying with 32", "smaller batch"))
    assert notes[-1] == ("vae: fp32, fused optimizer, whole step as one CUDA graph on cuda\n"
                         "vae: step graph off since step 4, eager steps")
    assert len(notes) == 2
