"""Exploring a run's images: variations ("more like this"), interpolation between two images, the
nearest training images, and keeping what you like (a PNG strip or grid, an animation, a sprite
sheet, a folder of single PNGs).

Every image made here has a **recipe**: the JSON an exported PNG carries (docs/architecture.md, "PNG
format"). A grid's recipe says how to sample it again; a single image's adds its ``index`` in that
grid; variations and interpolations add ``explore``, which holds the recipe(s) of the image(s) they
started from. ``replay`` makes any recipe's images again, with the latents they were decoded from
where a latent member made them (found by watching ``from_latents`` while a fusion is replayed), so a
variation of a variation, or of a mixture's image, starts from the right latent.

The CLI (``sample --variations-of / --interpolate / --nearest``) and the window (gui/jobs.py) both call
these functions. Explore sits above sampling and evaluation: it replays recipes with the one and
measures distances in the other's feature space.
"""
from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import torch

from engine.config import FASHION_MNIST
from engine.errors import UserError
from engine.evaluation import Evaluator, lazy_context
from engine.metrics.features import JudgeRecipe
from engine.metrics.memorisation import nearest_k
from engine.sampling import SampleRequest, open_for_sampling, sample_images
from engine.store.images import (ANIMATIONS, grid, read_png_metadata, save_animation, save_png, save_singles,
                                 to_nhwc_uint8)

if TYPE_CHECKING:
    from engine.members.base import Member
    from engine.session import Session

VARIATIONS_N = 16
INTERPOLATION_STEPS = 8
DEFAULT_STRENGTH = 0.5
MAX_NEAREST = 16


@dataclass(frozen=True)
class Explored:
    """Images made from one recipe: who made each one, and its latent where known."""

    images: torch.Tensor                         # (n, C, H, W) in [-1, 1]
    recipe: dict[str, Any]                       # the whole set's (a grid's or strip's PNG text)
    makers: tuple[str, ...]                      # provenance: a member, or a strategy's label
    latents: tuple[torch.Tensor | None, ...]     # per image; None where no latent is known

    def single(self, index: int) -> dict[str, Any]:
        """The recipe of image ``index`` alone (what its own PNG carries)."""
        return {**self.recipe, "index": index, "provenance": self.makers[index]}

    def singles(self) -> list[dict[str, Any]]:
        return [self.single(i) for i in range(len(self.images))]


@dataclass(frozen=True)
class Source:
    """One image to explore from, and the member that explores it."""

    member: str                      # the member that varies or interpolates it
    image: torch.Tensor              # (C, H, W) in [-1, 1]
    latent: torch.Tensor | None
    recipe: dict[str, Any]           # the image's own recipe (with its index)
    note: str = ""                   # said to the user, e.g. who varies an average's image

    @property
    def label(self) -> int | None:
        """The class the image was asked to be (None: any)."""
        return self.recipe.get("class")


# ---------------------------------------------------------------------------------------------
# recipes

def recipe_of_png(path: Path) -> dict[str, Any]:
    meta = read_png_metadata(Path(path))
    if "nearest_of" in meta:
        raise UserError(f"{path} shows samples beside their nearest training images; use the samples' own PNG")
    if "sheet_of" in meta:
        raise UserError(f"{path} is a sheet of picked images from several recipes; export them as single PNGs "
                        "to start from one")
    return meta


def seed_recipe(session: "Session", member: str, seed: int, label: int | None = None) -> dict[str, Any]:
    """The recipe of a seed's own image: the first of ``member``'s grid for ``seed`` (of class ``label``)."""
    session.member(member)
    request = SampleRequest(run=session.run.path, member=member, n=1, seed=seed, label=label)
    return {**request.metadata(session.run.run_id, session.checkpoint.name, {}), "index": 0, "provenance": member}


def _base(session: "Session") -> dict[str, Any]:
    return {"chorus": 1, "run": str(Path(session.run.path).absolute()), "run_id": session.run.run_id,
            "checkpoint": session.checkpoint.name}


def _check_run(session: "Session", recipe: Mapping[str, Any]) -> None:
    """A recipe is replayed at its own checkpoint: the session must be that one."""
    if recipe.get("checkpoint") not in (None, session.checkpoint.name):
        raise UserError(f"the image was made at checkpoint {recipe.get('checkpoint')}, not {session.checkpoint.name} "
                        "(open the run at that checkpoint)")


def session_for(recipe: Mapping[str, Any], png: Path | None = None, run: Path | None = None,
                device: str = "cpu") -> "Session":
    """The run a recipe was made from, at its checkpoint (``run`` overrides the recorded folder)."""
    request = SampleRequest.from_metadata(_plain(recipe), png or Path("the image"), run)
    return open_for_sampling(Path(request.run), request.checkpoint, device)


def _plain(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What SampleRequest checks of any recipe (its run, checkpoint, member or fusion, n and seed)."""
    return {key: value for key, value in recipe.items() if key != "explore"}


# ---------------------------------------------------------------------------------------------
# replaying a recipe

@contextmanager
def watching(members: Mapping[str, "Member"]) -> Iterator[dict[str, list[tuple[torch.Tensor, torch.Tensor]]]]:
    """While inside, every ``from_latents`` call of these members is recorded as (latents, images)."""
    calls: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    wrapped = [m for m in members.values() if m.can_sample]
    for member in wrapped:
        member.from_latents = _recorder(member, calls)  # an instance attribute shadows the method
    try:
        yield calls
    finally:
        for member in wrapped:
            del member.from_latents


def _recorder(member: "Member", calls):
    original = type(member).from_latents

    def record(latents: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        images = original(member, latents, *args, **kwargs)
        calls.setdefault(member.name, []).append((latents, images))
        return images

    return record


def _latent_of(image: torch.Tensor, maker: str, calls) -> torch.Tensor | None:
    """The latent ``maker`` decoded into exactly ``image`` while it was watched, if it did."""
    for latents, images in calls.get(maker, ()):
        same = (images == image.to(images.device)).flatten(1).all(dim=1).nonzero()
        if len(same):
            return latents[int(same[0])]
    return None


def replay(session: "Session", recipe: Mapping[str, Any], context=None) -> Explored:
    """Make a recipe's images again (same recipe, same pixels)."""
    _check_run(session, recipe)
    recipe = {key: value for key, value in recipe.items() if key not in ("index", "provenance")}
    explore = recipe.get("explore")
    if explore is not None:
        if not isinstance(explore, dict):
            raise UserError("the recipe's 'explore' entry is damaged")
        try:
            if "variations" in explore:
                step = explore["variations"]
                return variations(session, source_of(session, step["of"], context), int(recipe["n"]),
                                  float(step["strength"]), int(recipe["seed"]), context)
            if "interpolate" in explore:
                step = explore["interpolate"]
                return interpolation(session, source_of(session, step["a"], context),
                                     source_of(session, step["b"], context), int(recipe["n"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"the recipe of the explored images is damaged: {exc!r}") from None
        raise UserError(f"unknown kind of explored image: {', '.join(explore) or 'none'}")
    request = SampleRequest.from_metadata(recipe, Path("the image"), session.run.path)
    with watching(session.generators()) as calls:
        images, makers, params = sample_images(session, request, context or lazy_context(session))
    if request.member is not None:
        latents = calls.get(request.member, [(None, None)])[-1][0]
        per_image = tuple(latents[i] if latents is not None else None for i in range(len(images)))
    else:
        per_image = tuple(_latent_of(images[i], makers[i], calls) for i in range(len(images)))
    whole = request.metadata(session.run.run_id, session.checkpoint.name, params)
    return Explored(images, whole, tuple(makers), per_image)


def source_of(session: "Session", recipe: Mapping[str, Any], context=None, index: int | None = None) -> Source:
    """The image a single-image recipe names (or image ``index`` of a grid's), and who explores it:
    the member that made it, or, for a strategy's blend (an average, a refinement, a soup), the run's
    member that varies any image."""
    if not isinstance(recipe, Mapping):
        raise UserError("the recipe of the image to start from is damaged")
    index = recipe.get("index") if index is None else index
    n = recipe.get("n")
    if index is None:
        if n != 1:
            raise UserError(f"the PNG holds a grid of {n} images; say which with --index (0 to {int(n or 1) - 1})")
        index = 0
    if not isinstance(index, int) or not isinstance(n, int) or not 0 <= index < n:
        raise UserError(f"image index {index!r} is not in the grid of {n!r} images")
    made = replay(session, recipe, context)
    own = copy.deepcopy(made.single(index))
    maker, latent = made.makers[index], made.latents[index]
    if maker in session.generators():
        return Source(maker, made.images[index], latent, own)
    varier = next((name for name, m in session.generators().items() if m.can_vary == "image"), None)
    if varier is None:
        raise UserError(f"no single member made this image ({maker}) and none of the run's members varies "
                        "any image; explore an image a member made")
    return Source(varier, made.images[index], None, own, f"made by {maker}; varied by {varier} (re-noising)")


# ---------------------------------------------------------------------------------------------
# variations and interpolation

def variations(session: "Session", source: Source, n: int = VARIATIONS_N, strength: float = DEFAULT_STRENGTH,
               seed: int = 0, context=None) -> Explored:
    """``n`` neighbours of ``source``: strength 0 gives the image itself, 1 unrelated images."""
    _check_count(n, "--n")
    if not 0.0 <= strength <= 1.0:
        raise UserError(f"--strength must be between 0 and 1, got {strength}")
    member = session.member(source.member)
    if not member.can_vary:
        raise UserError(f"member {source.member!r} cannot make variations of an image")
    with watching({member.name: member}) as calls:
        images = member.variations(source.image, source.latent, n, float(strength), torch.Generator().manual_seed(seed),
                                   label=source.label)
    decoded = [latents for latents, out in calls.get(member.name, ()) if out is images]
    latents = tuple(decoded[0]) if decoded else (None,) * n
    recipe = {**_base(session), "member": member.name, "fusion": None, "params": {}, "n": n, "seed": seed,
              **_class_entry(source.label),
              "explore": {"variations": {"of": source.recipe, "strength": float(strength)}}}
    return Explored(images, recipe, (member.name,) * n, latents)


def interpolation(session: "Session", a: Source, b: Source, steps: int = INTERPOLATION_STEPS) -> Explored:
    """``steps`` images on the spherical path from ``a``'s latent to ``b``'s, both ends included."""
    if not 2 <= steps <= 256:
        raise UserError(f"an interpolation takes 2 to 256 steps (--n), got {steps}")
    if a.member != b.member:
        raise UserError(f"interpolation needs two images of the same member, got {a.member} and {b.member}")
    member = session.member(a.member)
    if not member.can_interpolate:
        raise UserError(f"member {a.member!r} cannot interpolate between images")
    if a.latent is None or b.latent is None:
        raise UserError("interpolation starts from the two images' latents, and one of them has none "
                        "(a blend of several members, or a re-noised variation); choose images a member made")
    if a.label != b.label:
        raise UserError("interpolation walks between two images asked of the same class (or both of any class); "
                        f"these were asked of classes {a.label} and {b.label}")
    with watching({member.name: member}) as calls:
        images = member.interpolate(a.latent, b.latent, steps, label=a.label)
    decoded = [latents for latents, out in calls.get(member.name, ()) if out is images]
    recipe = {**_base(session), "member": member.name, "fusion": None, "params": {}, "n": steps, "seed": 0,
              **_class_entry(a.label), "explore": {"interpolate": {"a": a.recipe, "b": b.recipe}}}
    return Explored(images, recipe, (member.name,) * steps, tuple(decoded[0]) if decoded else (None,) * steps)


def _class_entry(label: int | None) -> dict[str, int]:
    """A recipe's "class" entry: present only when a class was asked for."""
    return {} if label is None else {"class": label}


def _check_count(n: int, flag: str) -> None:
    from engine.config import MAX_SAMPLES

    if not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise UserError(f"{flag} must be between 1 and {MAX_SAMPLES}, got {n}")


# ---------------------------------------------------------------------------------------------
# the nearest training images

@dataclass(frozen=True)
class Neighbour:
    index: int          # row of the training images
    name: str           # its file (a folder), or its index among the training images
    distance: float     # in the evaluation's feature space
    image: np.ndarray   # (H, W, C) uint8


@dataclass(frozen=True)
class Nearest:
    neighbours: tuple[tuple[Neighbour, ...], ...]   # per image, nearest first
    likely_copy: tuple[bool, ...] | None            # nearer than the copy threshold; None: no threshold
    threshold: float | None
    why_no_flag: str                                # why there is no copy flag ("" when there is one)
    features: str                                   # the feature space's name


def evaluator_for(session: "Session", judge_recipe: JudgeRecipe = JudgeRecipe()) -> Evaluator:
    """The evaluation's feature space for a run (its judge trained once per data set and cached)."""
    from engine.data.sources import load_data

    data = session.data or load_data(session.config.data)
    return Evaluator(data, session.config.data, session.device, judge_recipe=judge_recipe)


def nearest_training(evaluator: Evaluator, images: torch.Tensor, k: int = 3) -> Nearest:
    """The ``k`` training images nearest each image in the evaluation's feature space, and whether
    the nearest is nearer than the memorisation test's threshold (a likely copy)."""
    if not 1 <= k <= MAX_NEAREST:
        raise UserError(f"--nearest must be between 1 and {MAX_NEAREST}, got {k}")
    train = torch.from_numpy(evaluator.train_features())
    query = np.concatenate([evaluator.extract(part) for part in images.split(500)])
    distances, rows = nearest_k(query, train, k)
    data = evaluator.data
    named = _namer(data, evaluator.data_config.source)
    neighbours = tuple(tuple(Neighbour(int(r), named(int(r)), float(d), data.images[int(r)])
                             for r, d in zip(rows_i, dist_i)) for rows_i, dist_i in zip(rows, distances))
    test = evaluator.copies()
    if test is None:
        return Nearest(neighbours, None, None, "no likely-copy flag: this data set has no held-out images "
                       f"(the reference is {evaluator.reference_name}), so nothing says how close is too close",
                       evaluator.extract.name)
    flags = tuple(bool(d <= test.threshold) for d in distances[:, 0])
    return Nearest(neighbours, flags, test.threshold, "", evaluator.extract.name)


def _namer(data, source: str):
    """A training image's name: its file (a folder), else its index in the source (an .npz's row
    before the held-out split, Fashion-MNIST's training split)."""
    if data.paths:
        return lambda row: Path(data.paths[row]).name
    label = Path(source).name if source != FASHION_MNIST else "Fashion-MNIST train"
    rows = data.rows if data.rows is not None else np.arange(len(data.images))
    return lambda row: f"{label} #{int(rows[row])}"


def nearest_sheet(images: np.ndarray, nearest: Nearest) -> np.ndarray:
    """One row per image: the image, then its nearest training images (a grid, k + 1 columns)."""
    rows = [np.stack([images[i], *[n.image for n in nearest.neighbours[i]]]) for i in range(len(images))]
    k = max(len(row) for row in rows)
    return grid(np.concatenate(rows), columns=k)


def nearest_lines(nearest: Nearest) -> list[str]:
    lines = []
    for i, found in enumerate(nearest.neighbours):
        flag = "" if nearest.likely_copy is None else (" — likely copy" if nearest.likely_copy[i] else "")
        lines.append(f"image {i}: " + ", ".join(f"{n.name} ({n.distance:.3g})" for n in found) + flag)
    if nearest.likely_copy is None:
        lines.append(nearest.why_no_flag)
    else:
        lines.append(f"likely copy: nearer than {nearest.threshold:.3g}, closer than 99 % of held-out images come")
    return lines


def nearest_metadata(recipe: Mapping[str, Any], nearest: Nearest) -> dict[str, Any]:
    return {"chorus": 1, "nearest_of": dict(recipe), "features": nearest.features, "threshold": nearest.threshold,
            "nearest": [{"likely_copy": None if nearest.likely_copy is None else nearest.likely_copy[i],
                         "neighbours": [{"name": n.name, "index": n.index, "distance": n.distance} for n in found]}
                        for i, found in enumerate(nearest.neighbours)]}


# ---------------------------------------------------------------------------------------------
# keeping: where a set of images goes

def is_folder(out: Path | str) -> bool:
    text = str(out)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def write(explored: Explored, out: Path | str, columns: int | None = None, spacing: int = 2,
          stem: str = "image", folder: bool | None = None) -> list[Path]:
    """``out`` a folder (DIR/): one PNG per image with its own recipe; ``.png``: a grid (a strip for an
    interpolation; ``columns`` and ``spacing`` make a sprite sheet) with the set's recipe; ``.webp`` or
    ``.gif``: an animation of the images. ``folder`` None: a folder when ``out`` ends in / or is one."""
    images = to_nhwc_uint8(explored.images)
    if is_folder(out) if folder is None else folder:
        return save_singles(Path(out), images, explored.singles(), stem)
    suffix = Path(out).suffix.lower()
    if suffix in ANIMATIONS:
        return [save_animation(Path(out), images)]
    if suffix != ".png":
        raise UserError(f"--out must be a .png, .webp or .gif file or a folder ending in /, got {out}")
    if columns is None and "interpolate" in (explored.recipe.get("explore") or {}):
        columns = len(images)
    margin = spacing if columns is None else 0
    return [save_png(Path(out), grid(images, columns, spacing, margin), explored.recipe)]
