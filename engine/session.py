"""The engine API shared by the CLI, the GUI's child process and the tests.

A Session is one run: its folder, its data resident on the device, and its members. Create one
for a new run, or open an existing run folder at its latest (or a chosen) checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.accel import STEP_GRAPH, FastPaths, compile_available, step_graph_available
from engine.config import RunConfig
from engine.data.dataset import DeviceDataset
from engine.data.sources import LoadedData, Progress, load_data
from engine.device import choose_device
from engine.errors import DataNotFound, UserError
from engine.members.base import Member
from engine.members.registry import member_class
from engine.store.checkpoints import (STEP_DIR, CheckpointDamaged, list_checkpoints, load_checkpoint,
                                     save_checkpoint)
from engine.store.run_folder import RunFolder
from engine.training.control import Control
from engine.training.events import Finished
from engine.training.pace import Schedule
from engine.training.pacer import Pacer
from engine.training.step_graph import StepGraphs
from engine.training.trainer import Callback, Trainer

if TYPE_CHECKING:
    from engine.training.distributed import World


def member_seed(seed: int, name: str) -> int:
    """Each member's own seed: independent of which other members the run has."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


class Session:
    def __init__(self, run: RunFolder, data: LoadedData | None, device: torch.device,
                 fast: FastPaths | None = None, world: "World | None" = None):
        """``data`` None: a session for sampling only (no dataset loaded or kept on the device).

        ``fast`` overrides the fast paths the run's settings choose for each member (benchmarks);
        ``world`` makes the session one rank of a data-parallel job (engine/training/distributed.py).
        """
        self.run = run
        self.config: RunConfig = run.config
        self.data = data
        self.device = device
        self.world = world
        train = self.config.train
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # every batch has the same shape
        shard = _shard(data, world) if data is not None else None
        self.dataset = DeviceDataset(shard, device, self.config.data.flip) if shard is not None else None
        size, channels = self.config.data.size, self.config.data.channels
        self.members: dict[str, Member] = {}
        for member_config in self.config.members:
            cls = member_class(member_config.kind)
            paths = fast or cls.fast_paths(device, train.precision, train.compile, train.steps)
            if world is not None and paths.step_graph:  # the all-reduce between backward and step stays eager
                paths = dataclasses.replace(paths, step_graph=False)
            self.members[member_config.name] = cls(member_config, (channels, size, size), run.num_classes,
                                                   device, member_seed(train.seed, member_config.name), paths)
        self.notes = _fast_path_notes(self, fast)
        # captured training steps (engine/training/step_graph.py), kept across train() calls; a test
        # may set step_graphs.recorder to capture without a GPU
        self.step_graphs = StepGraphs()
        if world is not None:
            from engine.training.distributed import attach

            for member in self.members.values():
                attach(member, world, member_seed(train.seed, member.name))
        # each member's paces over the run: its configured one, or as reviews set them (pacing = gain)
        self.paces: dict[str, Schedule] = {m.name: Schedule.fixed(m.pace) for m in self.config.members}
        gain = train.pacing == "gain" and world is None  # ranks would each decide from their own clock
        self.pacer = Pacer({n: m.config.pace for n, m in self.members.items() if m.can_sample}) if gain else None
        self._probe = None
        self.checkpoint: Path | None = None
        # the ensemble steps the trainer has run (a checkpoint records them): the members' step counts
        # cannot tell them apart when every pace is below 1 (3 steps at pace ½ are 6 or 7 ensemble steps)
        self._rounds: int | None = None
        self._elapsed_before = 0.0
        self._started = time.perf_counter()

    # -- creating and opening ------------------------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, out: Path, device: str | None = None, fast: FastPaths | None = None,
               world: "World | None" = None, reading: Progress | None = None) -> "Session":
        """A new run in ``out``; ``reading`` hears (files read, files in all) while a folder is read."""
        torch_device = choose_device(device or config.train.device)
        data = load_data(config.data, progress=reading)
        config = resolve_data(config, data)
        data = _check_batches(config, data)
        if world is None or world.is_main:
            run = RunFolder.create(Path(out), config, data.fingerprint, data.num_classes,
                                   data.class_names if data.num_classes else ())
        if world is not None:  # the other ranks read the folder rank 0 made
            from engine.training.distributed import barrier

            barrier()
            run = run if world.is_main else RunFolder.open(Path(out))
        return cls(run, data, torch_device, fast, world)

    @classmethod
    def open(cls, path: Path, device: str | None = None, checkpoint: Path | None = None,
             with_data: bool = True, world: "World | None" = None, fast: FastPaths | None = None,
             reading: Progress | None = None) -> "Session":
        """Open a run at its latest (or the given) checkpoint; ``with_data=False`` for sampling only.

        ``fast`` and ``reading``: as for ``create``."""
        run = RunFolder.open(Path(path))
        torch_device = choose_device(device or run.config.train.device)
        try:
            data = load_data(run.config.data, progress=reading) if with_data else None
        except DataNotFound:
            raise UserError(f"run {path} was trained on {run.config.data.source}, which is not there any more "
                            "(moved or renamed?); put it back there to go on with this run") from None
        if data is not None and run.fingerprint and data.fingerprint != run.fingerprint:
            raise UserError(f"the data {run.config.data.source!r} changed since run {path} was made "
                            f"(fingerprint {data.fingerprint} ≠ {run.fingerprint}); start a new run")
        session = cls(run, data, torch_device, fast, world)
        chosen = checkpoint or run.latest_checkpoint()
        if chosen is not None:
            try:
                session.load_checkpoint(chosen)
            except CheckpointDamaged as exc:
                latest = checkpoint is None or Path(chosen) == run.latest_checkpoint()  # the window names it
                raise UserError(f"{exc}{_older_hint(run, chosen) if latest else ''}") from None
        if world is not None:
            from engine.training.distributed import reseed

            for member in session.members.values():
                reseed(member, world, member_seed(session.config.train.seed, member.name))
        return session

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> Path:
        states = {name: member.state_dict() for name, member in self.members.items()}
        extra = {"elapsed": self.elapsed(), "run_id": self.run.run_id,
                 "paces": {name: schedule.to_json() for name, schedule in self.paces.items()}}
        if self.pacer is not None:
            extra["pacer"] = self.pacer.to_json()
        path = save_checkpoint(self.run.checkpoints, step, states, extra, self.config.train.keep_checkpoints)
        self.checkpoint = path
        return path

    def load_checkpoint(self, path: Path) -> None:
        meta, states = load_checkpoint(path)
        unknown = sorted(set(states) - set(self.members))
        if unknown:
            raise UserError(f"checkpoint {path} holds member(s) {', '.join(unknown)} that run.json does not list")
        for name, member in self.members.items():
            if name not in states:
                raise UserError(f"checkpoint {path} has no state for member {name!r}")
            try:
                member.load_state_dict(states[name])
            except (RuntimeError, ValueError, KeyError, TypeError) as exc:
                first = _first_reason(exc)
                raise UserError(f"checkpoint {path / (name + '.safetensors')} does not fit member "
                                f"{name!r} of this run: {first}") from None
        recorded_paces = meta.get("paces") if isinstance(meta.get("paces"), dict) else {}
        self.paces = {m.name: Schedule.from_json(recorded_paces.get(m.name), m.pace) for m in self.config.members}
        if self.pacer is not None:
            self.pacer.restore(meta.get("pacer"))
        recorded = meta.get("step")
        self._rounds = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else None
        self._elapsed_before = float(meta.get("elapsed", 0.0))
        self._started = time.perf_counter()
        self.checkpoint = path

    def checkpoint_history(self) -> list[Path]:
        """The run's checkpoints up to the one the session holds, oldest first (so a soup can be
        made again)."""
        return [p for p in list_checkpoints(self.run.checkpoints) if int(STEP_DIR.match(p.name).group(1)) <= self.step]

    def elapsed(self) -> float:
        return self._elapsed_before + time.perf_counter() - self._started

    @property
    def recorded_seconds(self) -> float:
        """The wall-clock its checkpoint recorded (a run trained in one go: its training time); 0 for
        a new run."""
        return self._elapsed_before

    @property
    def step(self) -> int:
        """The ensemble steps every member has completed (each at its own pace): the trainer's own
        count (or the checkpoint's) while every member's optimizer steps agree with it, otherwise the
        fewest rounds the members' steps allow (a member that failed and sat out is behind; members
        stepped outside the trainer, as the speed bench does, are ahead)."""
        rounds = self._rounds
        if rounds is not None and all(self.paces[n].quota(rounds) == m.step for n, m in self.members.items()):
            return rounds
        return min(self.member_rounds().values())

    def advance(self, step: int) -> None:
        """The trainer has run ensemble step ``step``."""
        self._rounds = step

    def member_rounds(self) -> dict[str, int]:
        """Each member's completed ensemble steps: its optimizer steps ÷ its pace."""
        return {name: self.paces[name].rounds_done(m.step) for name, m in self.members.items()}

    def set_pace(self, name: str, step: int, pace: float) -> None:
        """Member ``name`` takes ``pace`` optimizer steps per ensemble step from step ``step`` on."""
        self.paces[name] = self.paces[name].from_step(step, pace)

    def probe(self, names: list[str]) -> dict[str, float]:
        """The quality probe's distance for each named generator (engine/metrics/probe.py)."""
        if self._probe is None:
            from engine.metrics.probe import QualityProbe

            self._probe = QualityProbe(self.data, self.dataset.images, self.device)
        return self._probe({name: self.members[name] for name in names})

    # -- training and sampling -----------------------------------------------------------------
    def train(self, total_steps: int, callbacks: list[Callback] | None = None,
              control: Control | None = None) -> Finished:
        if self.world is None or self.world.is_main:
            self.run.truncate_metrics(self.member_rounds())
        self._started = time.perf_counter()
        return Trainer(self, callbacks, control).run(total_steps)

    def generators(self) -> dict[str, Member]:
        return {name: m for name, m in self.members.items() if m.can_sample}

    def member(self, name: str) -> Member:
        if name not in self.members:
            raise UserError(f"this run has no member {name!r}; it has: {', '.join(self.members)}")
        return self.members[name]


def resolve_data(config: RunConfig, data: LoadedData) -> RunConfig:
    """The run's config with the size and channels "auto" chose for this data, checked against every
    member (e.g. the diffusion's size divisible by 4), and each member's data-dependent parameters
    settled (e.g. the DCGAN's augmentation on a small folder)."""
    resolved = data.config or config.data
    members = []
    for member in config.members:
        cls = member_class(member.kind)
        cls.check_data(resolved)
        settled = cls.settle_params(member.params, len(data.images), resolved, data.num_classes)
        members.append(dataclasses.replace(member, params=settled))
    return dataclasses.replace(config, data=resolved, members=tuple(members))


def _shard(data: LoadedData, world: "World | None") -> LoadedData:
    """This rank's share of the images (every ``world.size``-th one), or all of them."""
    if world is None or world.size == 1:
        return data
    labels = data.labels[world.rank::world.size] if data.labels is not None else None
    return dataclasses.replace(data, images=data.images[world.rank::world.size], labels=labels)


def _fast_path_notes(session: "Session", override: FastPaths | None) -> list[str]:
    """One line per member on how it trains; why compile is off when it was asked for."""
    notes = [f"{name}: {member.fast.describe()} on {session.device}" for name, member in session.members.items()]
    if override is not None:
        return notes
    asked = session.config.train.compile
    why = compile_available(session.device)
    if asked in ("on", "graphs") and why:
        notes.append(f"torch.compile was asked for but is off: {why}")
    if asked == STEP_GRAPH and not all(m.fast.step_graph for m in session.members.values()):
        fp16 = torch.float16 if session.config.train.precision == "fp16" else None
        why = step_graph_available(session.device, fp16)
        if not why and session.world is not None:
            why = "data-parallel training averages gradients between backward and step, outside a graph"
        notes.append(f"whole-step CUDA graphs were asked for but are off: {why}")
    return notes


def _check_batches(config: RunConfig, data: LoadedData) -> LoadedData:
    """Refuse empty data; say so in the report when one batch is larger than the whole dataset."""
    if len(data.images) == 0:
        raise UserError(f"the data {config.data.source!r} holds no images")
    largest = max(m.batch_size for m in config.members)
    if len(data.images) >= largest:
        return data
    note = (f"Note: fewer images ({len(data.images)}) than one batch ({largest}); batches are drawn "
            "with replacement, so images repeat within a batch.")
    return dataclasses.replace(data, report=data.report.rstrip() + "\n" + note)


def _first_reason(exc: BaseException) -> str:
    """The informative line of a load error (torch puts "Error(s) in loading state_dict…" first)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Error(s) in loading state_dict")]
    text = (useful or lines or [repr(exc)])[0]
    return text if len(text) <= 240 else text[:237] + "..."


def _older_hint(run: RunFolder, damaged: Path) -> str:
    older = [p.name for p in list_checkpoints(run.checkpoints) if p != damaged]
    if not older:
        return ""
    return (f"; the run has older checkpoints ({', '.join(older)}): move {damaged.name} out of "
            f"{run.checkpoints} to resume from {older[-1]}")
