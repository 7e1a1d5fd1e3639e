"""Atomic checkpoints: RUN/checkpoints/step-NNNNNNN/<member>.safetensors + state.json.

A checkpoint is written into a hidden temporary folder, each file fsynced, then renamed into place
and the parent folder fsynced, so a crash leaves either the old set or the new one, never half.
Only safetensors and JSON are read back: nothing from a run folder can execute code.
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


def save_checkpoint(folder: Path, step: int, states: dict[str, dict[str, Any]], extra: dict[str, Any],
                    keep: int) -> Path:
    """Write one checkpoint of every member's state; prune to the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:07d}"
    temp = folder / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    skeletons = {}
    for name, state in states.items():
        tensors, skeletons[name] = split_state(state)
        path = temp / f"{name}.safetensors"
        save_file(tensors, str(path))
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    _write_json(temp / "state.json", {"step": step, "members": skeletons, **extra})
    _fsync_dir(temp)
    if final.exists():  # same step saved again (e.g. stop right after a periodic save)
        shutil.rmtree(final)
    os.replace(temp, final)
    _fsync_dir(folder)
    prune(folder, keep)
    return final


def list_checkpoints(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def prune(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".tmp-step-*"):  # left by a crash during an earlier save
        if not stale.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Read (state.json contents, {member: nested state}) from one checkpoint folder."""
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} has no state.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"checkpoint {path}/state.json is damaged: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("members"), dict):
        raise UserError(f"checkpoint {path}/state.json is damaged: no member table")
    states = {}
    for name, skeleton in meta["members"].items():
        file = path / f"{name}.safetensors"
        try:
            tensors = load_file(str(file))
        except FileNotFoundError:
            raise UserError(f"checkpoint file missing: {file}") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"checkpoint file {file} is damaged: {exc}") from None
        try:
            states[name] = join_state(tensors, skeleton)
        except ValueError as exc:
            raise UserError(f"checkpoint {path}/state.json does not match {file.name}: {exc}") from None
    return meta, states


def load_member_state(path: Path, name: str) -> dict[str, Any]:
    """One member's nested state from a checkpoint folder, without reading the others' tensors."""
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        skeleton = meta["members"][name]
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} has no state.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"checkpoint {path}/state.json has no usable state for {name!r}: {exc!r}") from None
    file = path / f"{name}.safetensors"
    try:
        return join_state(load_file(str(file)), skeleton)
    except FileNotFoundError:
        raise UserError(f"checkpoint file missing: {file}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"checkpoint file {file} is damaged: {exc}") from None


def tensor_only(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The flat tensors of a state, e.g. to average weights across checkpoints."""
    return split_state(state)[0]
