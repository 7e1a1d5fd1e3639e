"""Collapse and blur, said and not only shown: each generator's previews measured against real images.

At every preview, for each member that makes images:
- **diversity ratio**: the mean pairwise distance between its preview images ÷ the same between real
  training images, both on 8×8 average-pooled pixels (a fixed, training-free feature: a collapsed
  generator repeats itself whatever the network learnt). 1 is as varied as the data; near 0, one
  image again and again.
- **sharpness ratio**: the mean energy of the images' Laplacian (their high frequencies) ÷ the real
  images'. 1 is as crisp as the data; a blurry VAE is well below.
Mean pairwise distances do not depend on how many images are compared, so 16 previews stand against
256 real images. A member below a threshold for ``STREAK`` previews in a row gets one plain warning
(the CLI prints it, the window shows it by the member's preview) until it recovers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

POOL = 8
REAL_IMAGES = 256
DIVERSITY_LOW = 0.5
SHARPNESS_LOW = 0.4
STREAK = 2  # previews in a row


def pooled(images: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) in [-1, 1] → (n, C·8·8): what a person sees at a glance."""
    return F.adaptive_avg_pool2d(images.float(), POOL).flatten(1)


def mean_pairwise(features: torch.Tensor) -> float:
    return float(torch.pdist(features).mean()) if len(features) > 1 else 0.0


def high_frequency(images: torch.Tensor) -> float:
    x = images.float()
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=x.device)
    kernel = kernel.expand(x.shape[1], 1, 3, 3)
    return float(F.conv2d(x, kernel, groups=x.shape[1]).pow(2).mean())


@dataclass
class PreviewCheck:
    """The real images' figures, taken once; ``ratios`` for a generator's previews."""

    real: torch.Tensor  # (m, C, H, W) in [-1, 1]
    real_diversity: float = 0.0
    real_sharpness: float = 0.0
    streaks: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.real_diversity = mean_pairwise(pooled(self.real))
        self.real_sharpness = high_frequency(self.real)

    def ratios(self, images: torch.Tensor) -> tuple[float, float]:
        diversity = mean_pairwise(pooled(images)) / max(self.real_diversity, 1e-12)
        sharpness = high_frequency(images) / max(self.real_sharpness, 1e-12)
        return diversity, sharpness

    def warning(self, member: str, title: str, diversity: float, sharpness: float) -> str:
        """A plain sentence when a ratio has stayed low for STREAK previews (said once a stretch)."""
        said = []
        for key, value, low, message in (
                ("diversity", diversity, DIVERSITY_LOW,
                 f"{title}'s images look alike (diversity {diversity:.2f} of the data's): it may have collapsed. "
                 "Try a lower learning rate, a smaller batch, or for a DCGAN augment=adaptive; or rely on the "
                 "other members and leave it out of fusions."),
                ("sharpness", sharpness, SHARPNESS_LOW,
                 f"{title}'s images are blurry (sharpness {sharpness:.2f} of the data's). Try more steps, "
                 "a wider network, or a lower beta for a VAE.")):
            streak = self.streaks.setdefault(member, {}).get(key, 0)
            streak = streak + 1 if value < low else 0
            self.streaks[member][key] = streak
            if streak == STREAK:
                said.append(message)
        return " ".join(said)
