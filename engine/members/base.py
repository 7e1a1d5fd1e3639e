"""The Member interface: one trainable model with its optimizers, RNG and step count.

Members know nothing of the GUI, the run folder or each other. A member class says everything the
rest of Chorus needs to know about its kind: its parameters, capabilities (``can_sample``,
``can_score``, ``can_refine``, ``can_guide``, ``can_be_guided``, ``can_vary``, ``can_interpolate``), fast-path defaults, tiny test parameters, and its loss
(``losses``), which both ``train_step`` and the speed bench's bare loop run. ``train_step`` returns
its losses as 0-d tensors so that the trainer decides when to synchronise with the device (fetching
a float every step would stall a GPU). docs/architecture.md describes the interface.
"""
from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping

import torch
from torch import nn

from engine.accel import DEFAULT_AUTO, NO_AUTO, AutoPaths, FastPaths, resolve
from engine.config import DataConfig, MemberConfig, OptimConfig, Param
from engine.data.dataset import Batch, DeviceDataset
from engine.errors import UserError
from engine.members.alpha import learns_premultiplied, premultiply, settle_alpha, unpremultiply
from engine.members.classes import ClassCounts, asked_labels, is_conditioned, settle_classes
from engine.members.ema import EMA_RAMPUP, ema_beta, half_life_of
from engine.members.latents import latent_neighbours, slerp_path
from engine.members.optimizers import apply_fast_flags, check_optimizer_shapes, make_optimizer
from engine.members.sizing import settle_sizes

NOISE_BLOCK = 64


@dataclass
class Loss:
    """One term of a training step: ``loss`` is minimised by optimizer ``optimizer`` (a key of
    ``trained_networks``) before the next term is computed; ``logged`` are the values to report."""

    optimizer: str
    loss: torch.Tensor
    logged: dict[str, torch.Tensor] = field(default_factory=dict)


class Member(ABC):
    kind: ClassVar[str]
    title: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    default_optim: ClassVar[OptimConfig] = OptimConfig()
    default_batch_size: ClassVar[int] = 64
    default_pace: ClassVar[float] = 1.0  # optimizer steps per ensemble step (engine/training/pace.py)
    ema_rampup: ClassVar[float] = EMA_RAMPUP  # an EMA copy's half-life: at most this share of the images seen
    # parameters an "auto" value sizes from the image size and channels (engine/members/sizing.py),
    # each with its measured default at the reference size
    sized: ClassVar[dict[str, int]] = {}
    can_sample: ClassVar[bool] = True
    can_score: ClassVar[bool] = False   # ``score`` gives a realism per image (it can vote)
    can_refine: ClassVar[bool] = False  # ``refine`` denoises other members' images (the refine fusion)
    can_guide: ClassVar[bool] = False   # ``critic`` gives a differentiable realism per image (the guide fusion)
    can_be_guided: ClassVar[bool] = False  # ``sample_guided`` follows a critic's gradient while sampling
    one_pass: ClassVar[bool] = False  # ``sample`` is one network pass (cheap: the vote draws a larger pool of it)
    # ``variations`` makes neighbours of one image: "latent" needs the image's latent (a GAN's z, a
    # VAE's code), "image" works from the pixels alone (re-noising), "" cannot (engine/explore.py)
    can_vary: ClassVar[str] = ""
    can_interpolate: ClassVar[bool] = False  # ``interpolate`` walks between two latents (slerp)
    # learns p(image | class) on labelled data when its ``classes`` parameter is on (engine/members/classes.py);
    # its sampling, scoring and guiding methods then take the class asked for (``label``; None: any)
    can_condition: ClassVar[bool] = False
    # learns RGBA in premultiplied alpha when its ``alpha`` parameter says so (engine/members/alpha.py):
    # it converts images on their way in (``to_own_alpha``) and its samples on their way out (``to_straight_alpha``)
    can_premultiply: ClassVar[bool] = False
    # the smallest sensible parameters (16-px images, a few steps): the self-test and the test fixtures
    tiny_params: ClassVar[Mapping[str, Any]] = {}
    # what fast paths "auto" turns on, by device type (engine/accel.py; measured in docs/performance.md)
    fast_defaults: ClassVar[Mapping[str, AutoPaths]] = DEFAULT_AUTO

    def __init__(self, config: MemberConfig, image_shape: tuple[int, int, int], num_classes: int,
                 device: torch.device, seed: int, fast: FastPaths | None = None):
        self.config = config
        self.fast = fast or FastPaths()
        # Data-parallel training: called with an optimizer after its backward pass, before its step,
        # to average the gradients over processes (engine/training/distributed.py sets it).
        self.grad_sync: Callable[[torch.optim.Optimizer], None] | None = None
        self.image_shape = image_shape
        self.num_classes = num_classes
        self.device = device
        self.step = 0
        self.batch_images = config.batch_size  # the current batch's size (an out-of-memory halving changes it)
        self.state_version = 0  # bumped when weights or optimizer state are replaced (a captured step goes stale)
        # under a step graph the step count also lives on the device, where a replayed graph reads it
        self.step_count = torch.zeros((), dtype=torch.int64, device=device) if self.fast.step_graph else None
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.conditioned = is_conditioned(self.can_condition, config.params, num_classes)
        # the training images seen per class: what "any class" samples in proportion to
        self.class_counts = ClassCounts(num_classes) if self.conditioned else None
        self.premultiplied = self.can_premultiply and learns_premultiplied(config.params, image_shape[0])
        with torch.random.fork_rng(devices=[]):  # weight init from the seed, global RNG untouched
            torch.manual_seed(seed)
            self.build()
        for net in self.networks().values():
            net.to(device)
            if self.fast.channels_last:  # 4-d weights (convolutions) in NHWC; others are unchanged
                net.to(memory_format=torch.channels_last)
        self.optimizers = {name: make_optimizer(config.optim, net.parameters(), self.fast.fused_optimizer,
                                                self.capturable)
                           for name, net in self.trained_networks().items()}
        self.scalers = {name: torch.amp.GradScaler(device.type) for name in self.optimizers} \
            if self.fast.grad_scaler else {}
        if self.fast.compile:
            self.set_compile(True)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def p(self) -> dict[str, Any]:
        """The parameters; a size left "auto" (a member built without ``settle_params``) is the
        measured default (``sized``)."""
        params = dict(self.config.params)
        return {k: (self.sized[k] if v == "auto" and k in self.sized else v) for k, v in params.items()}

    @property
    def capturable(self) -> bool:
        """Optimizers keep their step counts on the GPU, so a CUDA graph can replay them."""
        return self.fast.step_graph and self.device.type == "cuda"

    @classmethod
    def fast_paths(cls, device: torch.device, precision: str = "auto", compile: str = "auto",
                   steps: int = 0) -> FastPaths:
        """The fast paths a member of this kind trains with on ``device`` under the run's settings."""
        return resolve(device, cls.fast_defaults.get(device.type, NO_AUTO), precision, compile, steps)

    @classmethod
    def check_data(cls, data: DataConfig) -> None:
        """Raise UserError if this member cannot train on such data (size, channels)."""

    @classmethod
    def upgrade_params(cls, params: Mapping[str, Any], batch_size: int) -> Mapping[str, Any]:
        """A run.json's parameters as this version names them (an old run's retired ones translated)."""
        if "ema_decay" not in params:
            return params
        upgraded = {k: v for k, v in params.items() if k != "ema_decay"}
        upgraded.setdefault("ema_half_life", half_life_of(params["ema_decay"], batch_size))
        return upgraded

    @classmethod
    def settle_params(cls, params: Mapping[str, Any], images: int, data: DataConfig | None = None,
                      num_classes: int = 0) -> dict[str, Any]:
        """The parameters with every "auto" that depends on the data settled, for a new run on
        ``images`` training images of the resolved ``data`` (size, channels) with ``num_classes``
        labels, written to run.json. An "auto" still in a run.json is a run made before the parameter
        existed. Subclasses settle their own and call this last: it settles the classes
        (``can_condition``) and the sizes (``sized``: engine/members/sizing.py)."""
        settled = settle_classes(dict(params), num_classes) if cls.can_condition else dict(params)
        settled = settle_alpha(settled, data.channels) if cls.can_premultiply and data is not None else settled
        if data is None or not cls.sized:
            return settled
        return settle_sizes(cls, settled, data.size, data.channels)

    @abstractmethod
    def build(self) -> None:
        """Create the networks (called under a seeded RNG)."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose weights are saved (trained ones and EMA copies; ``with_classes``)."""

    def with_classes(self, nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
        """``nets`` and, for a member that learns classes, its class counts (saved with the weights)."""
        return {**nets, "classes": self.class_counts} if self.class_counts is not None else nets

    def labels_for(self, latents: torch.Tensor, label: int | None) -> torch.Tensor | None:
        """The class of each latent's image: ``label`` for all, any (read from each latent: see
        engine/members/classes.py) for None; None for a member without classes (which refuses a label)."""
        return asked_labels(self.name, self.conditioned, self.class_counts, latents, label)

    def training_labels(self, batch: Batch) -> torch.Tensor | None:
        """The batch's labels for a member that learns classes (counted), None otherwise."""
        if not self.conditioned or batch.labels is None:
            return None
        self.class_counts.observe(batch.labels)
        return batch.labels

    def to_own_alpha(self, images: torch.Tensor) -> torch.Tensor:
        """Straight-alpha images (training batches, images given to score, vary or refine) in the
        alpha this member learns in (``can_premultiply``)."""
        return premultiply(images) if self.premultiplied else images

    def to_straight_alpha(self, images: torch.Tensor) -> torch.Tensor:
        """This member's images (in the alpha it learns in) as the straight alpha the rest of Chorus uses."""
        return unpremultiply(images) if self.premultiplied else images

    def trained_networks(self) -> dict[str, nn.Module]:
        """The networks that get an optimizer, by name."""
        return self.networks()

    def compiled_modules(self) -> list[nn.Module]:
        """The modules ``train_step`` calls directly: what ``torch.compile`` wraps."""
        return list(self.trained_networks().values())

    def set_compile(self, on: bool, backend: Any = "inductor") -> None:
        """Compile the training networks in place (state-dict keys unchanged), or go back to eager."""
        for module in self.compiled_modules():
            if on:
                mode = self.fast.compile_mode if backend == "inductor" else None
                module.compile(dynamic=False, backend=backend, mode=mode)
            else:
                module._compiled_call_impl = None  # what nn.Module.compile set; no public undo exists
        self.fast = dataclasses.replace(self.fast, compile=on)

    def draw_batch(self, dataset: DeviceDataset, size: int) -> Batch:
        """A training batch of ``size`` from ``dataset``, drawn with this member's generator, in its layout."""
        return dataset.batch(size, self.generator, self.fast.channels_last)

    # -- the parts of a training step the fast paths change ---------------------------------------
    def autocast(self):
        """Context for forward passes: autocast under bf16/fp16, nothing under fp32."""
        return self.fast.autocast(self.device)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backward ``loss`` and step optimizer ``name`` (gradient scaling and syncing included)."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler = self.scalers.get(name)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        if self.grad_sync is not None:
            self.grad_sync(optimizer)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    def advance(self) -> None:
        """Count one training step (at the end of ``train_step``)."""
        self.step += 1
        if self.step_count is not None:
            self.step_count.add_(1)

    def ema_beta(self, half_life: float) -> float | torch.Tensor:
        """The EMA decay for this step from a half-life counted in images, not steps (``ema_beta``):
        a batch halved after running out of memory keeps the average's horizon.

        Under a step graph it is computed on the device from the device step count: a host number
        would be frozen into the captured graph at its capture-time value.
        """
        batch = self.batch_images
        if self.step_count is None:
            return ema_beta(self.step, half_life, batch, self.ema_rampup)
        seen = (self.step_count.float() + 1.0) * batch
        half = torch.clamp(seen * self.ema_rampup, max=half_life).clamp_min(1e-8)
        return torch.pow(0.5, batch / half)

    @abstractmethod
    def losses(self, batch: Batch) -> Iterator[Loss]:
        """The training step's loss terms, in order, each stepped by its optimizer before the next
        is computed (a GAN's D, then its G). Forward passes run under ``self.autocast()``.

        It may be captured once and replayed as a CUDA graph (engine/training/step_graph.py): random
        draws use ``self.generator``, and nothing that changes from step to step may be read on the
        host (use ``ema_beta``, not ``self.step``). ``self.batch_images`` is the batch's size.
        """

    def after_step(self) -> None:
        """After every optimizer stepped: update EMA copies (``update_ema``); nothing by default."""

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One optimizer step on ``batch``; returns detached 0-d loss tensors."""
        logged: dict[str, torch.Tensor] = {}
        self.batch_images = int(batch.images.shape[0])
        for term in self.losses(batch):
            self.optimize(term.optimizer, term.loss)
            logged.update(term.logged)
        self.after_step()
        self.advance()
        return {key: value.detach() for key, value in logged.items()}

    def sample(self, n: int, generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        """``n`` images in [-1, 1], (n, C, H, W), on the device; same generator state → same images.
        ``label``: the class asked for (a member that learns classes), None: any."""
        raise UserError(f"member {self.name!r} is not a generator and cannot sample images")

    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one image's sampling noise (its latent): what ``from_latents`` decodes."""
        raise UserError(f"member {self.name!r} is not a generator and has no latent")

    def latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The latents ``sample(n, generator)`` decodes: image j's depends only on the generator's
        state and j (block noise), so a seed and an index name one latent for good."""
        return self.noise((n, *self.latent_shape()), generator)

    def from_latents(self, latents: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents (``sample`` is ``from_latents(latents(n, generator), label)``)."""
        raise UserError(f"member {self.name!r} is not a generator and cannot sample images")

    def variations(self, image: torch.Tensor, latent: torch.Tensor | None, n: int, strength: float,
                   generator: torch.Generator, label: int | None = None) -> torch.Tensor:
        """``n`` neighbours of one image (``image`` (C, H, W), ``latent`` its latent or None);
        ``strength`` in [0, 1]: 0 gives the image itself, 1 unrelated samples (``can_vary``).
        A member that varies its latent ("latent") gets latent neighbours of it here."""
        if self.can_vary != "latent":
            raise UserError(f"member {self.name!r} cannot make variations of an image")
        noise = self.latents(n, generator)
        return self.from_latents(latent_neighbours(needs_latent(self, latent), noise, strength), label)

    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int, label: int | None = None) -> torch.Tensor:
        """``steps`` images from latent ``a`` to latent ``b``, both included (``can_interpolate``):
        each point of the spherical path decoded."""
        if not self.can_interpolate:
            raise UserError(f"member {self.name!r} cannot interpolate between images")
        return self.from_latents(slerp_path(a, b, steps), label)

    def refine(self, images: torch.Tensor, strength: float, steps: int, generator: torch.Generator,
               label: int | None = None) -> torch.Tensor:
        """``images`` partly noised (``strength`` in (0, 1]) and denoised in ``steps`` steps (``can_refine``)."""
        raise UserError(f"member {self.name!r} cannot refine images")

    def score(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor | None:
        """Per-image realism, higher is more realistic (as an image of class ``label``, when given);
        None when the member has no such notion."""
        return None

    def critic(self, images: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """Per-image realism as a log-odds or log-probability, differentiable in ``images`` (``can_guide``)."""
        raise UserError(f"member {self.name!r} cannot guide another member's sampling")

    def sample_guided(self, n: int, generator: torch.Generator, critic: Callable[[torch.Tensor], torch.Tensor],
                      strength: float, steps: int | None = None, label: int | None = None) -> torch.Tensor:
        """``n`` images sampled while ``critic``'s gradient steers them (``can_be_guided``); strength 0
        is ``sample`` exactly."""
        raise UserError(f"member {self.name!r} cannot be guided while sampling")

    def noise(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Sampling noise drawn on the CPU generator, so a seed means the same images on any device.

        Drawn in whole blocks of NOISE_BLOCK images, so image j depends only on the generator's
        state and j: ``sample(n)`` is a prefix of ``sample(m)`` for m > n (caches rely on it).
        """
        n, rest = shape[0], shape[1:]
        blocks = [torch.randn((NOISE_BLOCK, *rest), generator=generator) for _ in range(-(-n // NOISE_BLOCK))]
        return torch.cat(blocks)[:n].to(self.device) if blocks else torch.empty((0, *rest), device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "nets": {name: net.state_dict() for name, net in self.networks().items()},
            "optims": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": self.generator.get_state(),
            **({"scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()}}
               if self.scalers else {}),
        }

    def load_weights(self, nets: dict[str, Any], optims: dict[str, Any]) -> None:
        """Load network weights and optimizer states (a checkpoint's, or a rollback copy's).

        The optimizers' state tensors are new objects afterwards: a captured step is stale
        (``state_version``)."""
        networks = self.networks()
        missing = set(networks) - set(nets)
        if missing:
            raise ValueError(f"checkpoint lacks network(s) {', '.join(sorted(missing))}")
        for name, net in networks.items():
            net.load_state_dict(nets[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(optims[name])
            check_optimizer_shapes(name, opt)
            apply_fast_flags(opt, self.fast.fused_optimizer, self.capturable)
        self.state_version += 1

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights(state["nets"], state["optims"])
        rng = state["rng"].cpu()
        if rng.numel() == self.generator.get_state().numel():
            self.generator.set_state(rng if self.device.type == "cpu" else state["rng"])
        else:  # saved on another kind of device (a CUDA state is 16 bytes, a CPU one 5056): a new stream
            digest = hashlib.sha256(rng.numpy().tobytes()).digest()  # from the saved state: still repeatable
            self.generator.manual_seed(int.from_bytes(digest[:8], "little") % 2**63)
        for name, scaler in self.scalers.items():  # absent when the run was saved under another precision
            if name in state.get("scalers", {}):
                scaler.load_state_dict(state["scalers"][name])
        self.step = int(state["step"])
        if self.step_count is not None:
            self.step_count.fill_(self.step)

    def train(self, mode: bool = True) -> None:
        for net in self.trained_networks().values():
            net.train(mode)


def needs_latent(member: Member, latent: torch.Tensor | None) -> torch.Tensor:
    if latent is None:
        raise UserError(f"{member.name}'s variations start from the image's latent, which is not known for "
                        "this image (only for images the member made itself, or a mixture or vote picked)")
    return latent
