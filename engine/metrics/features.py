"""Feature extractors for evaluation, and a cache of reference features by image-set fingerprint.

The default extractor is a judge CNN trained once per dataset with a fixed seed and cached on
disk (safetensors), so that every member, every fusion and every later evaluation of the same
data is measured in the same feature space. A user may instead point to local Inception-v3
weights; nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engine import __version__
from engine.cache import CACHE_ENV, cache_dir  # noqa: F401 - CACHE_ENV re-exported
from engine.config import DataConfig, MemberConfig
from engine.data.dataset import DeviceDataset, to_signed_float
from engine.data.sources import LoadedData
from engine.errors import UserError
from engine.members.judge import Judge


class FeatureExtractor(Protocol):
    name: str

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """(n, C, H, W) in [-1, 1] → (n, D) float64 features."""


@dataclass(frozen=True)
class JudgeRecipe:
    steps: int = 1500
    batch_size: int = 128
    seed: int = 12345


class JudgeFeatures:
    """The penultimate layer (64-d) of a reference judge trained on the run's data."""

    def __init__(self, judge: Judge, recipe_key: str = ""):
        self.judge = judge
        # cached features are only valid for the judge that made them: its recipe is in the name
        self.name = f"judge-{hashlib.blake2b(recipe_key.encode(), digest_size=6).hexdigest()}" if recipe_key \
            else "judge"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.judge.features(images.to(self.judge.device)).double().cpu().numpy()

    @torch.no_grad()
    def classify(self, features: np.ndarray) -> np.ndarray | None:
        """The judge's class for each feature vector (its head on them), None if it learnt no classes."""
        if not self.judge.uses_labels:
            return None
        head = self.judge.net.head
        logits = head(torch.as_tensor(features, dtype=head.weight.dtype, device=head.weight.device))
        return logits.argmax(1).cpu().numpy()


def judge_key(data: LoadedData, recipe: JudgeRecipe) -> str:
    """Identifies a reference judge: the data, its shape, the training recipe and Chorus's version."""
    _, size, _, channels = data.images.shape
    return f"{data.fingerprint}-{size}-{channels}-{recipe.steps}-{recipe.batch_size}-{recipe.seed}-{__version__}"


def reference_judge(data: LoadedData, device: torch.device, recipe: JudgeRecipe = JudgeRecipe(),
                    cache: Path | None = None, progress: Callable[[float], None] | None = None) -> Judge:
    """Train (or load from the cache) the evaluation judge for this data, with a fixed seed."""
    n, size, _, channels = data.images.shape
    config = MemberConfig("judge", Judge.default_optim, recipe.batch_size, {})
    judge = Judge(config, (channels, size, size), data.num_classes, device, recipe.seed)
    key = judge_key(data, recipe)
    path = (cache or cache_dir()) / "judges" / f"{hashlib.blake2b(key.encode(), digest_size=10).hexdigest()}.safetensors"
    if path.exists():
        try:
            judge.net.load_state_dict(load_file(str(path), device=str(device)))
            return judge
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained, never trusted
            path.unlink(missing_ok=True)
    dataset = DeviceDataset(data, device)
    judge.train(True)
    for step in range(recipe.steps):
        judge.train_step(dataset.batch(recipe.batch_size, judge.generator))
        if progress and step % 50 == 0:
            progress(step / recipe.steps)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(".tmp")
        save_file({k: v.contiguous().cpu() for k, v in judge.net.state_dict().items()}, str(temp))
        temp.replace(path)
    except OSError:
        pass  # no cache: slower next time, same numbers
    return judge


class InceptionFeatures:
    """Inception-v3 pool features (2048-d) from a local weights file (safetensors or a state dict)."""

    name = "inception"

    def __init__(self, weights: Path, device: torch.device):
        from torchvision.models import inception_v3

        weights = Path(weights)
        if not weights.is_file():
            raise UserError(f"Inception weights not found: {weights} (Chorus never downloads weights; "
                            "point --inception-weights to a local torchvision inception_v3 file)")
        try:
            if weights.suffix == ".safetensors":
                state = load_file(str(weights))
            else:
                state = torch.load(weights, map_location="cpu", weights_only=True)  # no pickle code
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"cannot read Inception weights {weights}: {exc}") from None
        model = inception_v3(weights=None, aux_logits=True, init_weights=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"{weights} is not a torchvision inception_v3 state dict: "
                            f"{str(exc).splitlines()[0]}") from None
        model.fc = torch.nn.Identity()
        self.model = model.eval().to(device)
        self.device = device

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        mean = torch.tensor([0.485, 0.456, 0.406], device=self.device)[None, :, None, None]
        std = torch.tensor([0.229, 0.224, 0.225], device=self.device)[None, :, None, None]
        for part in images.split(64):
            x = (part.to(self.device) + 1) / 2
            if x.shape[1] == 4:  # straight alpha over white, as a person sees it on a page
                x = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.model((x - mean) / std).double().cpu())
        return torch.cat(out).numpy()


RANDOM_SEED = 2020  # the random feature network's weights: fixed, so every evaluation uses the same
RANDOM_WIDTHS = (64, 128, 256)


class RandomFeatures:
    """A second, untrained feature space: a VGG-style CNN with fixed random weights (seeded), its
    feature maps pooled (mean and max) into 512 values. Random embeddings are what Naeem et al.
    (2020) propose where no pretrained network fits the images; here they matter because nothing in
    them was trained on the data, so a strategy steered or picked by a judge (``guide``, a judge's
    vote) cannot score well merely by pleasing a network of the evaluation judge's kind. Colour +
    alpha is composited over white and grey repeated, as for Inception."""

    def __init__(self, device: torch.device, seed: int = RANDOM_SEED):
        layers: list[torch.nn.Module] = []
        cin = 3
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for width in RANDOM_WIDTHS:
                layers += [torch.nn.Conv2d(cin, width, 3, 1, 1), torch.nn.ReLU(),
                           torch.nn.Conv2d(width, width, 3, 1, 1), torch.nn.ReLU(), torch.nn.AvgPool2d(2)]
                cin = width
            for layer in layers:  # He initialisation keeps the activations' scale: FDs of readable size
                if isinstance(layer, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    torch.nn.init.zeros_(layer.bias)
        self.model = torch.nn.Sequential(*layers[:-1]).eval().to(device)  # no pooling after the last block
        self.device = device
        self.name = f"random-{seed}-he{'-'.join(map(str, RANDOM_WIDTHS))}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = []
        for part in images.split(256):
            x = (part.to(self.device).float() + 1) / 2
            if x.shape[1] == 4:
                x = x[:, :3] * x[:, 3:] + (1 - x[:, 3:])
            x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
            maps = self.model(x * 2 - 1)
            out.append(torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1).double().cpu())
        return torch.cat(out).numpy()


class FeatureCache:
    """Features of fixed image sets (reference, floor), computed once per fingerprint."""

    def __init__(self, extractor: FeatureExtractor, folder: Path | None = None):
        self.extractor = extractor
        self.folder = folder
        self.memory: dict[str, np.ndarray] = {}

    def of_uint8(self, key: str, images: np.ndarray, device: torch.device) -> np.ndarray:
        """Features of an (n, H, W, C) uint8 array; ``key`` must identify its content."""
        full = f"{self.extractor.name}-{key}"
        if full in self.memory:
            return self.memory[full]
        path = self.folder / f"{hashlib.blake2b(full.encode(), digest_size=10).hexdigest()}.npy" if self.folder else None
        if path is not None and path.exists():
            try:
                features = np.load(path, allow_pickle=False)
                self.memory[full] = features
                return features
            except (OSError, ValueError):
                path.unlink(missing_ok=True)
        tensor = to_signed_float(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2))
        features = np.concatenate([self.extractor(part.to(device)) for part in tensor.split(1000)])
        self.memory[full] = features
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, features, allow_pickle=False)
            except OSError:
                pass
        return features


def reference_images(config: DataConfig, train: LoadedData,
                     limit: int = 10_000) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """The images generated ones are compared with: Fashion-MNIST's test split, else the held-out
    images of a folder or .npz (never trained on), else (too few to hold out) the training images.

    Returns (images, their labels or None, fingerprint, description).
    """
    from engine.data.sources import FASHION_MNIST, load_data

    if config.source == FASHION_MNIST:
        test = load_data(config, split="test")
        labels = test.labels[:limit] if test.labels is not None else None
        return test.images[:limit], labels, test.fingerprint, "Fashion-MNIST test split"
    if train.heldout is not None:
        labels = train.heldout_labels[:limit] if train.heldout_labels is not None else None
        return train.heldout[:limit], labels, f"{train.fingerprint}-heldout{len(train.heldout)}", \
            f"{len(train.heldout):,} held-out images (never trained on)"
    picks = np.sort(np.random.default_rng(0).permutation(len(train.images))[:limit])
    labels = train.labels[picks] if train.labels is not None else None
    return train.images[picks], labels, f"{train.fingerprint}-ref{limit}", \
        "the training images (too few to hold any out)"
