"""`sample`: a member's or a fusion's images by seed, replayed from a PNG's recipe, and the explore
paths (variations, interpolations, single PNGs, sprite sheets, animations, the nearest training
images: engine/explore.py). Apart from engine/cli.py, which parses the arguments."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from engine.errors import UserError


def cmd_sample(args: argparse.Namespace) -> int:
    from engine import explore

    _check_sample_flags(args)
    args.out_folder = args.out is not None and explore.is_folder(args.out)  # Path() drops a trailing "/"
    args.out = Path(args.out) if args.out else None
    if args.variations_of is not None or args.interpolate is not None or _explored_png(args.from_png) \
            or args.nearest or args.columns is not None or args.spacing is not None or args.out_folder \
            or (args.out is not None and args.out.suffix.lower() in (".webp", ".gif")):
        return _sample_explored(args)
    from engine.evaluation import lazy_context
    from engine.sampling import sample_to_png

    request = _sample_request(args)
    out = args.out or (args.from_png.with_name(args.from_png.stem + "-again.png") if args.from_png else None)
    if out is None:
        raise UserError("sample needs --out FILE.png")
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png, .webp or .gif file or a folder ending in /, got {out}")
    try:
        path = sample_to_png(request, out, args.device, context_for=lazy_context)
    except UserError as exc:
        if args.from_png is None:
            raise
        raise UserError(f"{exc} (parameters read from {args.from_png})") from None
    print(f"wrote {path}", file=sys.stderr)
    return 0


def _check_sample_flags(args: argparse.Namespace) -> None:
    """The combinations sample refuses, before anything is read."""
    if args.variations_of is not None:
        if args.member or args.fusion or args.param or args.from_png or args.interpolate:
            raise UserError("--variations-of takes the member and parameters from the PNG; leave out --member, "
                            "--fusion, --param, --from-png and --interpolate")
    elif args.strength is not None or args.index is not None:
        raise UserError("--strength and --index go with --variations-of PNG")
    if args.interpolate is not None:
        if not args.member or args.fusion or args.param or args.from_png:
            raise UserError("--interpolate needs RUN and --member NAME (two seeds of one member; no --fusion, "
                            "--param or --from-png)")
    if args.judge_steps is not None and not args.nearest:
        raise UserError("--judge-steps goes with --nearest K")
    if args.class_ is not None and (args.from_png or args.variations_of):
        raise UserError("--from-png and --variations-of keep the class the PNG was made with; leave out --class")


def _explored_png(path: Path | None) -> bool:
    if path is None:
        return False
    from engine.store.images import read_png_metadata

    return read_png_metadata(path).get("explore") is not None


def _sample_request(args: argparse.Namespace):
    from engine.sampling import SampleRequest

    given = {k: v for k, v in (("n", args.n), ("seed", args.seed)) if v is not None}  # else SampleRequest's
    if args.from_png is not None:
        if args.member or args.fusion or args.param:
            raise UserError("--from-png repeats the PNG's member or fusion and its parameters; "
                            "leave out --member, --fusion and --param (--n and --seed may change)")
        return dataclasses.replace(SampleRequest.from_png(args.from_png, run=args.run), **given)
    if args.run is None:
        raise UserError("sample needs a RUN folder (or --from-png FILE)")
    if not args.member and not args.fusion:
        raise UserError("sample needs --member NAME or --fusion NAME")
    if args.member and args.param:
        raise UserError("--param sets a fusion's parameters; a member takes none (use --fusion NAME)")
    return SampleRequest(run=args.run, member=args.member, fusion=args.fusion, params=_params(args.param),
                         label=_class_of(args), **given)


def _class_of(args: argparse.Namespace) -> int | None:
    """--class as the run's class index (checked against the run's classes), or None for any."""
    if args.class_ is None:
        return None
    from engine.store.run_folder import RunFolder

    return RunFolder.open(args.run).class_index(args.class_)


def _sample_explored(args: argparse.Namespace) -> int:
    """Variations, interpolations, explored PNGs replayed, and any sampling written as single PNGs,
    an animation or a sprite sheet, with the nearest training images when asked (engine/explore.py)."""
    from engine import explore
    from engine.evaluation import lazy_context
    from engine.sampling import open_for_sampling

    if args.variations_of is not None:
        recipe = explore.recipe_of_png(args.variations_of)
        session = explore.session_for(recipe, args.variations_of, args.run, args.device)
        context = lazy_context(session)
        source = explore.source_of(session, recipe, context, index=args.index)
        if source.note:
            print(source.note, file=sys.stderr)
        made = explore.variations(session, source, args.n or explore.VARIATIONS_N,
                                  explore.DEFAULT_STRENGTH if args.strength is None else args.strength,
                                  args.seed or 0, context)
        out, stem = args.out or args.variations_of.with_name(args.variations_of.stem + "-variations.png"), "variation"
    elif args.interpolate is not None:
        if args.run is None:
            raise UserError("--interpolate needs the RUN folder")
        session = open_for_sampling(args.run, None, args.device)
        label = session.run.class_index(args.class_) if args.class_ is not None else None
        a, b = (explore.source_of(session, explore.seed_recipe(session, args.member, seed, label))
                for seed in args.interpolate)
        made = explore.interpolation(session, a, b, args.n or explore.INTERPOLATION_STEPS)
        out, stem = args.out, f"{args.member}-{args.interpolate[0]}-{args.interpolate[1]}"
    elif _explored_png(args.from_png):
        if args.n is not None or args.seed is not None:
            raise UserError("--from-png of explored images repeats them as they were; leave out --n and --seed")
        recipe = explore.recipe_of_png(args.from_png)
        session = explore.session_for(recipe, args.from_png, args.run, args.device)
        made = explore.replay(session, recipe)
        out, stem = args.out or args.from_png.with_name(args.from_png.stem + "-again.png"), "image"
    else:
        request = _sample_request(args)
        session = open_for_sampling(request.run, request.checkpoint, args.device)
        made = explore.replay(session, request.metadata(session.run.run_id, session.checkpoint.name, request.params))
        out, stem = args.out, f"{request.member or request.fusion}-seed{request.seed}"
    if out is None:
        raise UserError("sample needs --out (FILE.png, FILE.webp, FILE.gif or DIR/)")
    folder = args.out_folder if args.out is not None else False
    written = explore.write(made, out, args.columns, 2 if args.spacing is None else args.spacing, stem, folder)
    print(f"wrote {written[0]}" + (f" … {written[-1].name} ({len(written)} files)" if len(written) > 1 else ""),
          file=sys.stderr)
    if args.nearest:
        _write_nearest(session, made, out, folder, args.nearest, args.judge_steps)
    return 0


def _write_nearest(session, made, out: Path, folder: bool, k: int, judge_steps: int | None) -> None:
    from engine import explore
    from engine.metrics.features import JudgeRecipe
    from engine.store.images import save_png, to_nhwc_uint8

    evaluator = explore.evaluator_for(session, JudgeRecipe(steps=judge_steps) if judge_steps else JudgeRecipe())
    nearest = explore.nearest_training(evaluator, made.images, k)
    sheet = explore.nearest_sheet(to_nhwc_uint8(made.images), nearest)
    path = Path(out) / "nearest.png" if folder else Path(out).with_name(Path(out).stem + "-nearest.png")
    save_png(path, sheet, explore.nearest_metadata(made.recipe, nearest))
    for line in explore.nearest_lines(nearest):
        print(line, file=sys.stderr)
    print(f"wrote {path}", file=sys.stderr)


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param must look like key=value, got {pair!r}")
        params[key.strip()] = value.strip()
    return params
