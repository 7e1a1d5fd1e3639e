"""Convolutional stacks shared by members: an upsampling decoder and a downsampling encoder."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def halvings(size: int, max_halvings: int = 4, smallest: int = 4) -> int:
    """How many stride-2 stages fit: 28 → 2 (7×7 base), 32 → 3 (4×4), 64 → 4 (4×4)."""
    count = 0
    while count < max_halvings and size % 2 == 0 and size // 2 >= smallest:
        size //= 2
        count += 1
    return count


def widths(width: int, stages: int) -> list[int]:
    """Channel widths from the coarsest stage to the finest (coarse = widest)."""
    return [width * 2 ** (stages - i) for i in range(stages + 1)]


class Decoder(nn.Module):
    """latent → (C, size, size): linear to a coarse map, then ×2 transposed convolutions."""

    def __init__(self, latent: int, channels: int, size: int, width: int, norm: bool):
        super().__init__()
        stages = halvings(size)
        self.base = size >> stages
        chans = widths(width, stages)
        self.project = nn.Linear(latent, chans[0] * self.base * self.base)
        layers: list[nn.Module] = [nn.BatchNorm2d(chans[0]) if norm else nn.Identity(), nn.ReLU(inplace=True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=not norm),
                       nn.BatchNorm2d(cout) if norm else nn.Identity(), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(chans[-1], channels, 3, 1, 1))
        self.body = nn.Sequential(*layers)
        self.first = chans[0]

    def forward(self, z):
        x = self.project(z).view(z.shape[0], self.first, self.base, self.base)
        return self.body(x)


class MinibatchStd(nn.Module):
    """One more feature map: the standard deviation of the features across a group of images
    (Karras et al. 2018, ProGAN/StyleGAN). A discriminator that sees it can tell a batch of look-alike
    images from a varied one, so a collapsing generator is penalised for the collapse itself.

    With the images' classes (a class-conditional discriminator's ``classes`` > 0), the group is each
    class's images in the batch: across classes the spread is large whatever G does, so mixed groups
    would not see a G that draws one image per class (Fashion-MNIST, classes on: recall 0.004)."""

    def __init__(self, group: int = 4, classes: int = 0):
        super().__init__()
        self.group, self.classes = group, classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        if labels is not None and self.classes:
            return torch.cat([x, self._class_spread(x, labels).reshape(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)
        group = math.gcd(n, self.group)
        y = x.float().reshape(group, n // group, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // group,)
        y = y.to(x.dtype).reshape(1, -1, 1, 1, 1).expand(group, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)

    def _class_spread(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Each image's value: the features' standard deviation across its class's images, averaged."""
        flat = x.float().flatten(1)
        # (n, classes); a comparison, as one_hot would read the labels' range back from the device
        members = (labels[:, None] == torch.arange(self.classes, device=labels.device)).to(flat.dtype)
        counts = members.sum(0).clamp(min=1)[:, None]
        mean = members.T @ flat / counts
        spread = ((members.T @ (flat - mean[labels]) ** 2) / counts + 1e-8).sqrt().mean(1)  # (classes,)
        return spread[labels].to(x.dtype)


class ClassInput(nn.Module):
    """A decoder's input for a class-conditional member: the latent and a learnt embedding of each
    image's class, side by side (a conditional GAN's G, a conditional VAE's decoder)."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        self.embed = nn.Embedding(classes, dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)


class Encoder(nn.Module):
    """(C, size, size) → ``out`` features: stride-2 convolutions with LeakyReLU, then linear.
    A discriminator's takes ``spectral`` (spectral normalisation of every layer, Miyato et al. 2018)
    and ``mbstd`` (a minibatch-standard-deviation map before the last layers).

    ``classes`` > 0 makes it class-conditional: with ``projection`` (a discriminator's, Miyato &
    Koyama 2018) the output gains the inner product of the last features with the class's learnt
    embedding; without, a learnt per-class offset (a conditional VAE's encoder: its codes need not
    say the class, which the decoder is given)."""

    def __init__(self, channels: int, size: int, width: int, out: int, spectral: bool = False,
                 mbstd: bool = False, classes: int = 0, projection: bool = False):
        super().__init__()
        stages = halvings(size)
        chans = list(reversed(widths(width, stages)))
        norm = spectral_norm if spectral else (lambda layer: layer)
        layers: list[nn.Module] = [norm(nn.Conv2d(channels, chans[0], 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        if mbstd:
            layers += [MinibatchStd(classes=classes), norm(nn.Conv2d(chans[-1] + 1, chans[-1], 3, 1, 1)), nn.LeakyReLU(0.2, inplace=True)]
        base = size >> stages
        features = chans[-1] * base * base
        layers += [nn.Flatten(), norm(nn.Linear(features, out))]
        self.body = nn.Sequential(*layers)
        self.projection = projection
        if classes:
            self.embed = norm(nn.Embedding(classes, features if projection else out))
            if not spectral:  # starts as the unconditional network (a zero matrix has no spectral norm)
                nn.init.zeros_(self.embed.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return self.body(x)
        features = self.features(x, labels)
        out = self.body[-1](features)
        embedded = self.embed(labels).to(out.dtype)
        if self.projection:
            return out + (embedded * features).sum(1, keepdim=True)
        return out + embedded

    def features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The last layer's input; the minibatch-std map (if any) grouped by ``labels`` when given."""
        for layer in self.body[:-1]:
            x = layer(x, labels) if isinstance(layer, MinibatchStd) else layer(x)
        return x

    def every_class(self, x: torch.Tensor) -> torch.Tensor:
        """A projection discriminator's output for each class at once: (n, classes), each column
        what ``forward`` gives with that class for every image: a class-grouped minibatch-std map
        then sees all ``x`` as one group, whichever the class."""
        features = self.features(x, torch.zeros(len(x), dtype=torch.long, device=x.device))
        return self.body[-1](features) + features @ self.embed.weight.to(features.dtype).T
