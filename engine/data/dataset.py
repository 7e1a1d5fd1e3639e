"""The dataset resident on the training device as uint8; batches are drawn and augmented there."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.data.sources import LoadedData
from engine.device import is_out_of_memory
from engine.errors import UserError

# A 0-d CPU tensor goes into a kernel on any device as a plain argument (no copy, no sync)
_MINUS_ONE = torch.tensor(-1.0)


@dataclass(frozen=True)
class Batch:
    images: torch.Tensor            # (B, C, H, W) float in [-1, 1], on the device
    labels: torch.Tensor | None     # (B,) int64 or None


class DeviceDataset:
    """All images as one uint8 tensor on ``device``: no per-step host→device copy, no workers."""

    def __init__(self, data: LoadedData, device: torch.device, flip: bool = False):
        try:
            self.images = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous().to(device)
            self.labels = torch.from_numpy(data.labels).to(device) if data.labels is not None else None
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            n, size, _, channels = data.images.shape
            raise UserError(f"the dataset ({n:,} images at {size}×{size}×{channels}, "
                            f"{data.images.nbytes / 2**20:.0f} MB) does not fit in the memory of {device}; "
                            "choose a smaller size, 1 channel or fewer images") from None
        self.num_classes = data.num_classes
        self.flip = flip
        self.device = device

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def batch(self, size: int, generator: torch.Generator, channels_last: bool = False) -> Batch:
        """``size`` random images (with replacement), flipped at random when the data asks for it;
        ``channels_last``: in NHWC layout, for networks whose weights are (engine/accel.py)."""
        index = torch.randint(len(self), (size,), generator=generator, device=self.device)
        images = to_signed_float(self.images[index])
        if self.flip:
            flip = torch.rand(size, generator=generator, device=self.device) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = self.labels[index] if self.labels is not None else None
        return Batch(images, labels)


def to_signed_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return torch.add(_MINUS_ONE, images, alpha=2.0 / 255.0)  # one kernel: -1 + 2/255 · images, as float


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255] (clamped), same layout."""
    return ((images.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
