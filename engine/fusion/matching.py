"""The vote's default selection, ``shares="matched"``: pick from the pool towards the training images.

Two ways to pick (the vote's ``pick``):

- ``herding`` (default): kernel herding (Chen, Welling & Smola 2010), the greedy minimisation of
  the maximum mean discrepancy between the kept images and held-out training images in the picking
  feature space: each pick is the candidate whose kernel similarity to the training images, less its
  similarity to the images already kept, is highest. The kept set follows the training images'
  distribution as a whole (a region the pool over-draws stops paying once it has its share; a rare
  good region is visited), with no random draw to add noise.
- ``ratio``: drawn ∝ a density ratio, as follows.

Measured on the real path with the picking space apart from the evaluation's (docs/quality.md § The
vote picks apart from the evaluation), emoji colour at equal steps: herding 413.28 against the
DCGAN's 581.36 in the evaluation judge's features (0.711×, recall −0.004), the ratio draw 465.26
(0.800×); in the random evaluation CNN's features herding 1.773 and the ratio 1.807 against 2.122.

The ratio: a logistic classifier in the picking feature space (engine/metrics/picking.py) tells
held-out training images from the pool's images; its logit estimates log p_data(x) / p_pool(x) (the
density-ratio trick behind discriminator rejection sampling, Azadi et al. 2019, here on the whole
pool and in a fixed feature space). The kept
images are drawn without replacement in proportion to that ratio (Gumbel top-k, seeded), so the
output moves towards the training images' distribution: over-drawn styles are thinned, the pool's
rare good images kept, and the spread is not given up for realism as a top-k would. The classifier
also sees products of the features' main components, so its log-ratio is quadratic there (as between
two Gaussians) and the resampling matches the spread as well as the mean (emoji colour: 514 → 428
over three draws; docs/quality.md § The matched vote sees the spread too).

A member takes part only if its own best images (equal numbers of its first candidates, resampled
the same way) are within ``GATE`` times the Fréchet distance of the best member's: a linear
classifier cannot tell a blurry member's images, all near the middle of the feature space, from the
real ones well enough to thin them. A member whose pool looks collapsed takes no part either.

The ratio draw as first measured (judge features; docs/quality.md § The matched vote): emoji RGBA
488.31 against the best member's 673.13 (the previous default 721.69), emoji colour 606.28 against
1,185.94, Fashion-MNIST 8.95 against 27.84 (n = 2,000, 2,000 and 5,000; classes on, equal steps).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from engine.metrics.frechet import frechet_distance

RIDGE = 0.1          # the classifier's L2 penalty (weights on standardised features); 0.01 and 0.1 measured
QUADRATIC = 8        # principal components whose pairwise products the classifier also sees (0: linear); 4, 8, 12 measured
GATE = 1.5           # a member takes part if its resampled best is within this × the best member's FD
MIN_FIT = 64         # the smallest resampled set a member's FD is measured on
ONE_PASS_POOL = 6    # a member that samples in one network pass draws this many times its pool share
PICKS = ("ratio", "herding")  # how the candidates are picked (the module's docstring)
PICK = "herding"     # the default (docs/quality.md § The vote picks apart from the evaluation)
HERD_PROBE = 500     # candidates the kernel's bandwidth is measured on (evenly taken)
HERD_CHUNK = 4096    # candidates whose kernel rows are computed at once (memory)


def ratio_logits(real: np.ndarray, pool: np.ndarray, ridge: float = RIDGE, quadratic: int | None = None) -> np.ndarray:
    """log p_real(x) / p_pool(x) for every pool row, up to a constant: a class-balanced logistic
    regression (L-BFGS, deterministic) on the standardised features and the pairwise products of
    their first ``quadratic`` (default ``QUADRATIC``) principal components (a log-ratio quadratic
    there, as between two Gaussians: resampling moves the spread as well as the mean, and the Fréchet
    distance measures both)."""
    quadratic = QUADRATIC if quadratic is None else quadratic
    pool, real = standardised(pool, real)
    if quadratic > 0:
        basis = principal_axes(np.concatenate([real, pool]), quadratic)
        real, pool = with_products(real, basis), with_products(pool, basis)
    x = torch.as_tensor(np.concatenate([real, pool]), dtype=torch.float64)
    y = torch.cat([torch.ones(len(real)), torch.zeros(len(pool))]).double()
    balance = torch.cat([torch.full((len(real),), 0.5 / len(real)), torch.full((len(pool),), 0.5 / len(pool))]).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        solver.zero_grad()
        value = (balance * torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, reduction="none")).sum()
        value = value + ridge * (w @ w)
        value.backward()
        return value

    with torch.enable_grad():
        solver.step(loss)
    with torch.no_grad():
        return (x[len(real):] @ w + b).numpy()


def standardised(pool: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pool`` and ``other`` on the pool's scale: each feature less the pool's mean, over its spread."""
    mean, std = pool.mean(0), pool.std(0) + 1e-6
    return (pool - mean) / std, (other - mean) / std


def principal_axes(rows: np.ndarray, count: int) -> np.ndarray:
    """(D, count): the first ``count`` principal directions of ``rows`` (at most ~5,000 of them,
    evenly taken), signs fixed so the largest entry of each is positive (deterministic)."""
    sample = rows[:: max(1, len(rows) // 5000)]
    _, _, vt = np.linalg.svd(sample - sample.mean(0), full_matrices=False)
    axes = vt[:count]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])
    return (axes * signs[:, None]).T


def with_products(rows: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``rows`` and, after them, every product y_i·y_j (i ≤ j) of their coordinates y on ``basis``."""
    y = rows @ basis
    i, j = np.triu_indices(basis.shape[1])
    return np.concatenate([rows, y[:, i] * y[:, j]], axis=1)


def resample(logits: np.ndarray, count: int, generator: torch.Generator) -> np.ndarray:
    """``count`` positions drawn without replacement with probability ∝ exp(logit) (Gumbel top-k)."""
    uniform = torch.rand(len(logits), generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12).numpy()
    keys = logits - np.log(-np.log(uniform))
    return np.argsort(-keys, kind="stable")[:count]


def taking_part(features: np.ndarray, groups: Sequence[torch.Tensor], reference: np.ndarray, n: int,
                allowed: Sequence[bool]) -> list[bool]:
    """Which members' images may be kept: the first images of each member's pool (as many for each:
    the best of a larger pool would look better), ranked by their own density ratio, their best
    ``max(n, MIN_FIT)`` measured against ``reference``; within ``GATE`` of the best member's. When
    those members' pools hold fewer than ``n`` images, the next-closest members join until they hold
    ``n`` (a fusion always gives the images asked for)."""
    sizes = [len(own) for own, ok in zip(groups, allowed) if ok and len(own) >= 2]
    if not sizes:
        return [len(own) > 0 for own in groups]  # nothing measurable: everyone
    size = min(sizes)  # the same number of candidates for each: a larger pool's best would look better
    distances = []
    for own, ok in zip(groups, allowed):
        if not ok or len(own) < 2:
            distances.append(float("inf"))
            continue
        mine = features[own[:size].numpy()]
        best = mine[np.argsort(-ratio_logits(reference, mine), kind="stable")[:max(n, MIN_FIT)]]
        distances.append(frechet_distance(best, reference))
    top = min(distances)
    part = [d <= GATE * top for d in distances]
    for index in sorted(range(len(groups)), key=lambda i: distances[i]):
        if sum(len(own) for own, ok in zip(groups, part) if ok) >= n:
            break
        part[index] = part[index] or len(groups[index]) > 0
    return part


def herd(candidates: np.ndarray, reference: np.ndarray, count: int) -> np.ndarray:
    """``count`` positions of ``candidates`` by kernel herding towards ``reference``: a Gaussian kernel
    on the features standardised by the candidates' spread, its squared bandwidth the median squared
    distance between candidates (a broad kernel: it matches the distribution's shape, not single
    training images); each pick maximises mean k(x, reference) − Σ k(x, kept) / (t + 1), the greedy
    step of the maximum mean discrepancy. Deterministic (ties: the first position)."""
    x, real = (torch.as_tensor(rows, dtype=torch.float64) for rows in standardised(candidates, reference))
    probe = torch.cdist(x[:: max(1, len(x) // HERD_PROBE)], x).pow(2)
    h2 = float(probe[probe > 0].median()) if bool((probe > 0).any()) else 1.0
    attract = torch.cat([torch.exp(-torch.cdist(part, real).pow(2) / h2).mean(1) for part in x.split(HERD_CHUNK)])
    repel = torch.zeros(len(x), dtype=torch.float64)
    taken = torch.zeros(len(x), dtype=torch.bool)
    picks = []
    for t in range(min(count, len(x))):
        score = attract - repel / (t + 1)
        score[taken] = float("-inf")
        best = int(torch.argmax(score))
        picks.append(best)
        taken[best] = True
        repel += torch.exp(-torch.cdist(x[best:best + 1], x)[0].pow(2) / h2)
    return np.asarray(picks, dtype=np.int64)


def matched_keep(features: np.ndarray, groups: Sequence[torch.Tensor], reference: np.ndarray, n: int,
                 generator: torch.Generator, allowed: Sequence[bool], pick: str = PICK) -> torch.Tensor:
    """Pool indices of the ``n`` kept images (see the module's docstring); ``generator`` draws only
    for ``pick="ratio"``."""
    part = taking_part(features, groups, reference, n, allowed)
    candidates = torch.cat([own for own, ok in zip(groups, part) if ok] or list(groups))
    if len(candidates) <= n:
        return torch.sort(candidates).values
    if pick == "herding":
        picks = herd(features[candidates.numpy()], reference, n)
    else:
        picks = resample(ratio_logits(reference, features[candidates.numpy()]), n, generator)
    return torch.sort(candidates[torch.as_tensor(picks, dtype=torch.long)]).values
