"""Run configuration: frozen dataclasses, validated once at the edge with messages a user can act on.

A config comes from CLI flags, a TOML file or the GUI; whatever the source it passes through
``RunConfig.from_dict`` so that every value is checked in one place. Each member's own parameters
are checked against what its kind declares; this module knows the kinds only through the
``MemberKind`` interface, and the member registry (``engine.members.registry.run_config``) supplies
them, so the config sits below the members (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from engine.errors import UserError

SCHEMA_VERSION = 1
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")   # engine/accel.py applies them
COMPILE_MODES = ("auto", "off", "on", "graphs", "step-graph")  # graphs: compile with CUDA graphs;
# step-graph: no compiling, the whole training step captured as one CUDA graph (engine/training/step_graph.py)
PACINGS = ("fixed", "gain")   # how members share the run's time (engine/training/pace.py, pacer.py)
SIZES_HINT = "8 to 256 pixels (28, 32 and 64 are typical)"
# Values that the CLI, the sampling code, the trainer and the window share: spelt here only.
SAMPLE_COUNT = 64         # images one sample call makes unless asked for another number
MAX_SAMPLES = 100_000     # most images one sample or evaluate call makes
MIN_EVAL_SAMPLES = 10     # fewest samples an evaluation can estimate covariances from
PREVIEW_COUNT = 16        # images in a member's fixed-seed preview (the trainer's and the window's)
PACE_RANGE = (0.05, 20.0)   # a member's optimizer steps per ensemble step (MemberConfig.pace)
PREVIEW_SEED = 20241126   # the previews' seed: the same noise at every preview, so change is the training's


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _number(where: str, value: Any, kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Any:
    """Coerce ``value`` to int/float and range-check it, naming the setting in the message."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserError(f"{where} must be a number, got {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise UserError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if kind is int and isinstance(value, float) and value != int(value):
        raise UserError(f"{where} must be an integer, got {value!r}")
    if number != number or number in (float("inf"), float("-inf")):
        raise UserError(f"{where} must be finite, got {value!r}")
    if low is not None and (number <= low if low_open else number < low):
        raise UserError(f"{where} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and number > high:
        raise UserError(f"{where} must be <= {high}, got {value!r}")
    return number


def _reject_unknown(where: str, given: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise UserError(f"unknown key {unknown[0]!r} in {where}; allowed: {', '.join(sorted(allowed))}")


FASHION_MNIST = "fashion-mnist"  # the bundled data set's name as a data source
FASHION_MNIST_SHAPE = (28, 1)    # its size and channels: what "auto" means for it
AUTO = "auto"                    # size and channels: follow the pictures (engine/data/sources.py)
CHANNELS = (1, 3, 4)             # grey, colour, colour + transparency (straight alpha)
CHANNEL_NAMES = {1: "grey", 3: "colour", 4: "colour + transparency"}
HOLDOUT = 0.1                    # share of a folder or .npz held out as the evaluation reference


@dataclass(frozen=True)
class DataConfig:
    source: str = FASHION_MNIST  # "fashion-mnist", an image folder, or an .npz of uint8 images
    size: int | str = AUTO  # pixels, or "auto": follow the pictures (resolved when the data is read)
    channels: int | str = AUTO  # 1, 3, 4 or "auto": follow the pictures (resolved when the data is read)
    flip: bool = False  # random horizontal flips while training
    holdout: float = HOLDOUT  # share never trained on, the evaluation's reference (not Fashion-MNIST's)

    def __post_init__(self) -> None:
        if self.source == FASHION_MNIST:  # the bundled set's "auto" is known without reading it
            size, channels = FASHION_MNIST_SHAPE
            object.__setattr__(self, "size", size if self.size == AUTO else self.size)
            object.__setattr__(self, "channels", channels if self.channels == AUTO else self.channels)

    @property
    def resolved(self) -> bool:
        """Size and channels are numbers (a run's config always is; "auto" is for starting one)."""
        return self.size != AUTO and self.channels != AUTO

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "DataConfig":
        _reject_unknown("[data]", raw, {f.name for f in dataclasses.fields(cls)})
        source = str(raw.get("source", cls.source)).strip()
        _check(bool(source), "data source is empty: give 'fashion-mnist', an image folder or an .npz file")
        if source != FASHION_MNIST:  # run.json keeps it absolute: resume works from any directory
            source = str(Path(source).expanduser().absolute())
        size = raw.get("size", cls.size)
        if str(size).strip().lower() == AUTO:
            size = AUTO
        else:
            size = _number("data size", size, int, 8, 256)
        channels = raw.get("channels", cls.channels)
        if str(channels).strip().lower() == AUTO:
            channels = AUTO
        else:
            channels = _number("data channels", channels, int)
            _check(channels in CHANNELS,
                   f"data channels must be 1 (grey), 3 (RGB), 4 (RGBA) or auto, got {channels}")
        flip = raw.get("flip", cls.flip)
        _check(isinstance(flip, bool), f"data flip must be true or false, got {flip!r}")
        holdout = _number("data holdout", raw.get("holdout", cls.holdout), float, 0.0, 0.5)
        return cls(source=source, size=size, channels=channels, flip=flip, holdout=holdout)


@dataclass(frozen=True)
class OptimConfig:
    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str, defaults: "OptimConfig") -> "OptimConfig":
        _reject_unknown(where, raw, {f.name for f in dataclasses.fields(cls)})
        name = str(raw.get("name", defaults.name)).lower()
        _check(name in OPTIMIZERS, f"{where} name must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
        lr = _number(f"{where} lr", raw.get("lr", defaults.lr), float, 0.0, 10.0, low_open=True)
        betas = raw.get("betas", defaults.betas)
        _check(isinstance(betas, (list, tuple)) and len(betas) == 2,
               f"{where} betas must be two numbers like [0.5, 0.999], got {betas!r}")
        b1 = _number(f"{where} betas[0]", betas[0], float, 0.0, 0.9999)
        b2 = _number(f"{where} betas[1]", betas[1], float, 0.0, 0.99999)
        momentum = _number(f"{where} momentum", raw.get("momentum", defaults.momentum), float, 0.0, 0.9999)
        wd = _number(f"{where} weight_decay", raw.get("weight_decay", defaults.weight_decay), float, 0.0, 1.0)
        return cls(name=name, lr=lr, betas=(b1, b2), momentum=momentum, weight_decay=wd)


@dataclass(frozen=True)
class MemberConfig:
    """One member: its kind (registry name), optimizer, batch size and the kind's own parameters."""

    kind: str
    optim: OptimConfig = OptimConfig()
    batch_size: int = 64
    params: Mapping[str, Any] = field(default_factory=dict)
    pace: float = 1.0  # optimizer steps per ensemble step (engine/training/pace.py)

    @property
    def name(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        optim = dataclasses.asdict(self.optim)
        optim["betas"] = list(optim["betas"])
        return {"kind": self.kind, "optim": optim, "batch_size": self.batch_size, "pace": self.pace,
                "params": dict(self.params)}


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500  # ensemble steps: a member takes pace × this many optimizer steps
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    log_every: int = 10
    preview_every: int = 250
    precision: str = "auto"     # autocast on CUDA: auto = what bench speed measured faster per member
    compile: str = "auto"       # torch.compile of the training networks (CUDA; falls back to eager)
    pacing: str = "fixed"       # fixed: each member's pace; gain (experimental): reviews move time (training/pacer.py)
    review_every: int = 250     # ensemble steps between pace reviews (pacing = gain)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "TrainConfig":
        _reject_unknown("[train]", raw, {f.name for f in dataclasses.fields(cls)})
        get = lambda key: raw.get(key, getattr(cls, key))  # noqa: E731
        device = str(get("device")).lower()
        _check(device in DEVICES, f"device must be one of {', '.join(DEVICES)}, got {device!r}")
        precision = str(get("precision")).lower()
        _check(precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        compile_mode = str(get("compile")).lower()
        _check(compile_mode in COMPILE_MODES,
               f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
        pacing = str(get("pacing")).lower()
        _check(pacing in PACINGS, f"pacing must be one of {', '.join(PACINGS)}, got {pacing!r}")
        return cls(
            steps=_number("steps", get("steps"), int, 0, 10**9),
            seed=_number("seed", get("seed"), int, 0, 2**63 - 1),
            device=device,
            checkpoint_every=_number("checkpoint_every", get("checkpoint_every"), int, 1, 10**9),
            keep_checkpoints=_number("keep_checkpoints", get("keep_checkpoints"), int, 1, 1000),
            log_every=_number("log_every", get("log_every"), int, 1, 10**6),
            preview_every=_number("preview_every", get("preview_every"), int, 1, 10**9),
            precision=precision,
            compile=compile_mode,
            pacing=pacing,
            review_every=_number("review_every", get("review_every"), int, 1, 10**9),
        )


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig
    members: tuple[MemberConfig, ...]
    train: TrainConfig

    def member(self, name: str) -> MemberConfig:
        for member in self.members:
            if member.name == name:
                return member
        raise UserError(f"this run has no member {name!r}; it has: {', '.join(m.name for m in self.members)}")

    def kinds(self) -> tuple[str, ...]:
        return tuple(member.kind for member in self.members)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": dataclasses.asdict(self.data),
            "members": [m.to_dict() for m in self.members],
            "train": dataclasses.asdict(self.train),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], kinds: Callable[[str], "MemberKind"]) -> "RunConfig":
        """``kinds``: member kind name → its class (``engine.members.registry.member_class``)."""
        _check(isinstance(raw, Mapping), "a config must be a table/object at the top level")
        _reject_unknown("the config", raw, {"data", "members", "train"})
        data = DataConfig.from_dict(_table(raw.get("data", {}), "[data]"))
        train = TrainConfig.from_dict(_table(raw.get("train", {}), "[train]"))
        members_raw = raw.get("members", [])
        if isinstance(members_raw, Mapping):  # TOML: [members.dcgan] tables
            members_raw = [{"kind": k, **_table(v, f"[members.{k}]")} for k, v in members_raw.items()]
        _check(isinstance(members_raw, list) and members_raw, "the config needs at least one member")
        members = tuple(member_from_dict(_table(m, "a member"), data, kinds) for m in members_raw)
        names = [m.name for m in members]
        _check(len(set(names)) == len(names), f"each member may appear once, got {', '.join(names)}")
        return cls(data=data, members=members, train=train)



def _table(value: Any, where: str) -> Mapping[str, Any]:
    _check(isinstance(value, Mapping), f"{where} must be a table of settings, got {value!r}")
    return value


class MemberKind(Protocol):
    """What the config needs to know of a member kind (engine/members/base.py's Member class)."""

    params: tuple["Param", ...]
    default_optim: OptimConfig
    default_batch_size: int
    default_pace: float

    def check_data(self, data: DataConfig) -> None: ...

    def upgrade_params(self, params: Mapping[str, Any], batch_size: int) -> Mapping[str, Any]: ...


def member_from_dict(raw: Mapping[str, Any], data: DataConfig, kinds: Callable[[str], MemberKind]) -> MemberConfig:
    """Validate one member's settings against the parameters its kind declares."""
    kind = str(raw.get("kind", "")).lower()
    cls = kinds(kind)
    where = f"[members.{kind}]"
    _reject_unknown(where, raw, {"kind", "optim", "batch_size", "pace", "params"})
    optim = OptimConfig.from_dict(_table(raw.get("optim", {}), f"{where} optim"), f"{where} optim",
                                  cls.default_optim)
    batch = _number(f"{where} batch_size", raw.get("batch_size", cls.default_batch_size), int, 1, 65536)
    params_raw = cls.upgrade_params(_table(raw.get("params", {}), f"{where} params"), batch)
    _reject_unknown(f"{where} params", params_raw, {p.name for p in cls.params})
    params = {p.name: p.validate(params_raw.get(p.name, p.default), where) for p in cls.params}
    if data.resolved:  # else checked once the data is read and "auto" resolved (Session.create)
        cls.check_data(data)
    pace = _number(f"{where} pace", raw.get("pace", cls.default_pace), float, PACE_RANGE[0], PACE_RANGE[1])
    return MemberConfig(kind=kind, optim=optim, batch_size=batch, params=params, pace=pace)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config into a plain dict (validated later by RunConfig.from_dict)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    data = raw.get("data")
    source = data.get("source") if isinstance(data, dict) else None
    if isinstance(source, str) and source.strip() and source.strip() != FASHION_MNIST:
        # a relative folder in a config file means next to the file, wherever the command runs
        data["source"] = str(path.parent / Path(source.strip()).expanduser())
    return raw


@dataclass(frozen=True)
class Param:
    """A member's or fusion's declared parameter; validation and GUI controls both come from it."""

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    per_member: bool = False  # a {member: number} table, e.g. fusion weights
    scorers: bool = False  # per_member over the members that score images (vote), not those that sample
    # choices are the registered member kinds with this capability ("sample", "score", "draft": samples
    # but does not refine), after any fixed ``choices`` such as "auto"; the fusion fills them in from the
    # member registry (``Fusion.parameters``) and a form offers the run's own
    member_choice: str = ""
    # a number of this type or "auto", which the member settles from the data (e.g. a width sized for
    # the image size: engine/members/sizing.py)
    auto: type | None = None

    def validate(self, value: Any, where: str) -> Any:
        label = f"{where} {self.name}"
        if self.auto is not None:
            if isinstance(value, str) and value.strip().lower() == AUTO:
                return AUTO
            try:
                return _number(label, value, self.auto, self.low, self.high)
            except UserError as error:
                raise UserError(str(error).replace(" must be ", " must be auto or ", 1)) from None
        if self.per_member:
            if isinstance(value, str) and value.strip().lower() in (self.choices or ()):
                return value.strip().lower()  # a named mode such as "auto"
            return parse_member_numbers(value, label, self.low, self.high)
        if self.choices is not None:
            _check(value in self.choices,
                   f"{label} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
            return value
        if isinstance(self.default, bool):
            _check(isinstance(value, bool), f"{label} must be true or false, got {value!r}")
            return value
        kind = int if isinstance(self.default, int) else float
        return _number(label, value, kind, self.low, self.high)


def parse_member_numbers(value: Any, label: str, low: float | None, high: float | None) -> dict[str, float] | None:
    """``{"dcgan": 2, "vae": 1}`` or the CLI form ``"dcgan:2,vae:1"`` → a dict; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        table = {}
        for part in value.split(","):
            name, sep, number = part.partition(":")
            _check(bool(sep) and bool(name.strip()), f"{label} must look like 'dcgan:2,vae:1', got {value!r}")
            table[name.strip()] = number.strip()
        value = table
    _check(isinstance(value, Mapping), f"{label} must map member names to numbers, got {value!r}")
    return {str(k): _number(f"{label} {k}", v, float, low, high) for k, v in value.items()}
