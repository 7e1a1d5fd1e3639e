"""Atomic checkpoints: RUN/checkpoints/step-NNNNNNN/<member>.safetensors + state.json.

A checkpoint is written into a hidden temporary folder, each file fsynced, then renamed into place
and the parent folder fsynced, so a crash leaves either the old set or the new one, never half.
Only safetensors and JSON are read back: nothing from a run folder can execute code.

There is no "latest" pointer file: the rename of the folder is the commit, and the latest checkpoint
is the newest visible ``step-NNNNNNN`` folder. A pointer would be a second thing to keep in step
with the folders (written after the rename, it could name a checkpoint that pruning or a crash took
away); the folder listing cannot name a missing checkpoint. Old checkpoints are removed the same
way they appear: renamed to a hidden ``.del-*`` name first, so a crash during the deletion never
leaves a half-deleted ``step-*`` folder for a soup or an evaluation to trip on.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engine.errors import UserError
from engine.store.tensor_tree import join_state, split_state

STEP_DIR = re.compile(r"^step-(\d{7,})$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    with path.open("w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


class CheckpointDamaged(UserError):
    """A checkpoint's files are missing, cut short or not what they claim to be."""


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, no permission…); the previous ones are intact."""


def save_checkpoint(folder: Path, step: int, states: dict[str, dict[str, Any]], extra: dict[str, Any],
                    keep: int) -> Path:
    """Write one checkpoint of every member's state; prune to the newest ``keep``.

    Raises CheckpointWriteError when the disk refuses (the temporary folder is removed and the
    checkpoints already there are left as they were), so a trainer can report it and go on.
    """
    final = folder / f"step-{step:07d}"
    temp = folder / f".tmp-step-{step:07d}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temp, ignore_errors=True)
        temp.mkdir()
        _write_members(temp, step, states, extra)
        _test_hold("rename", step)
        old = _hide(final) if final.exists() else None  # same step saved again: swap the folders
        os.replace(temp, final)
        _fsync_dir(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, SafetensorError) as exc:
        shutil.rmtree(temp, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise CheckpointWriteError(f"cannot save checkpoint {final}: {reason}") from None
    _test_hold("prune", step)
    prune(folder, keep)
    return final


def _write_members(temp: Path, step: int, states: dict[str, dict[str, Any]], extra: dict[str, Any]) -> None:
    skeletons = {}
    for name, state in states.items():
        tensors, skeletons[name] = split_state(state)
        path = temp / f"{name}.safetensors"
        save_file(tensors, str(path))
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        _test_hold("files", step)
    _write_json(temp / "state.json", {"step": step, "members": skeletons, **extra})
    _fsync_dir(temp)


def _hide(path: Path) -> Path:
    """One atomic rename to a hidden name: from then on no reader lists it as a checkpoint."""
    hidden = path.with_name(f".del-{path.name}-{os.getpid()}")
    shutil.rmtree(hidden, ignore_errors=True)
    os.replace(path, hidden)
    return hidden


def _discard(path: Path) -> None:
    """Remove a checkpoint folder: hidden first, so a crash never leaves a half-deleted one."""
    try:
        hidden = _hide(path)
    except OSError:
        return
    shutil.rmtree(hidden, ignore_errors=True)


HOLD_ENV = "CHORUS_TEST_HOLD_SAVE"


def _test_hold(stage: str, step: int) -> None:
    """Test hook: with CHORUS_TEST_HOLD_SAVE="stage:step:fifo", stop inside the save so that a test
    can kill the process exactly there. Opening the FIFO meets the test's reader (no polling);
    then the process waits for ever. Unset (always, outside tests) it costs one dict lookup."""
    spec = os.environ.get(HOLD_ENV)
    if not spec:
        return
    want_stage, want_step, fifo = spec.split(":", 2)
    if want_stage != stage or int(want_step) != step:
        return
    with open(fifo, "wb") as handle:  # blocks until the test opens the FIFO for reading
        handle.write(stage.encode())
    import threading

    threading.Event().wait()


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def prune(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        _discard(old)
    for pattern in (".tmp-step-*", ".del-step-*"):  # left by a crash or failure in an earlier save or prune
        for stale in folder.glob(pattern):  # (called after our own rename: none of ours is in flight)
            shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read (state.json contents, {member: nested state}) from one checkpoint folder."""
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointDamaged(f"checkpoint {path} has no state.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointDamaged(f"checkpoint {path}/state.json is damaged: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("members"), dict):
        raise CheckpointDamaged(f"checkpoint {path}/state.json is damaged: no member table")
    states = {}
    for name, skeleton in meta["members"].items():
        file = path / f"{name}.safetensors"
        try:
            tensors = load_file(str(file))
        except FileNotFoundError:
            raise CheckpointDamaged(f"checkpoint file missing: {file}") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointDamaged(f"checkpoint file {file} is damaged: {exc}") from None
        try:
            states[name] = join_state(tensors, skeleton)
        except ValueError as exc:
            raise CheckpointDamaged(f"checkpoint {path}/state.json does not match {file.name}: {exc}") from None
    return meta, states


def load_member_state(path: Path, name: str) -> dict[str, Any]:
    """One member's nested state from a checkpoint folder, without reading the others' tensors."""
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        skeleton = meta["members"][name]
    except FileNotFoundError:
        raise CheckpointDamaged(f"checkpoint {path} has no state.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise CheckpointDamaged(f"checkpoint {path}/state.json has no usable state for {name!r}: {exc!r}") from None
    file = path / f"{name}.safetensors"
    try:
        return join_state(load_file(str(file)), skeleton)
    except FileNotFoundError:
        raise CheckpointDamaged(f"checkpoint file missing: {file}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointDamaged(f"checkpoint file {file} is damaged: {exc}") from None


def tensor_only(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The flat tensors of a state, e.g. to average weights across checkpoints."""
    return split_state(state)[0]
