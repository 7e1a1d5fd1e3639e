"""The public artist-style benchmark: Noto emoji as a folder of RGBA pictures in 9 category subfolders.

From the npm package emoji-datasource-google 16.0.0: ``img/google/64/*.png`` (RGBA, 64×64), and its
``emoji.json``, which gives each emoji a category (the subfolder, hence the label). Taken: the 1,906
base emoji with a Google image in 9 categories; left out: skin-tone variants (near-duplicates; they
are nested under their base emoji in emoji.json, not listed on their own) and the 5 "Component"
swatches. Nothing is downloaded at run time: ``python main.py bench fetch-emoji`` runs ``npm pack``
once (or takes a tarball already at hand with ``--tarball``) and lays the folder out in the user's
cache; nothing of it is in the repository.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from engine.cache import cache_dir
from engine.errors import UserError

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
EXPECTED = 1906
CATEGORIES = 9
IMAGES = "package/img/google/64/"
LEFT_OUT = ("Component",)


def emoji_folder() -> Path:
    return cache_dir() / "datasets" / f"emoji-google-{VERSION}"


def require_emoji_folder() -> Path:
    folder = emoji_folder()
    if not (folder / "README.txt").is_file():
        raise UserError(f"the emoji benchmark is not laid out in {folder} yet; run 'python main.py bench "
                        "fetch-emoji' once (it needs npm, or --tarball with the package's .tgz)")
    return folder


def fetch(tarball: Path | None = None) -> Path:
    """Lay the benchmark out (from ``tarball``, else from ``npm pack``); returns the folder."""
    with tempfile.TemporaryDirectory(prefix="chorus-emoji-") as temp:
        if tarball is None:
            tarball = _npm_pack(Path(temp))
        elif not Path(tarball).is_file():
            raise UserError(f"tarball not found: {tarball}")
        return lay_out(Path(tarball), emoji_folder())


def _npm_pack(where: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise UserError("npm is not installed: install Node.js (e.g. apt-get install npm), or download "
                        f"{PACKAGE}-{VERSION}.tgz elsewhere and pass it with --tarball")
    print(f"npm pack {PACKAGE}@{VERSION} …", file=sys.stderr)
    done = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}"], cwd=where, capture_output=True, text=True)
    tarballs = list(where.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise UserError(f"npm pack {PACKAGE}@{VERSION} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return tarballs[0]


def lay_out(tarball: Path, folder: Path) -> Path:
    """Copy the chosen emoji out of the package tarball into ``folder``/<category>/<image>.png."""
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            entries = json.load(archive.extractfile("package/emoji.json"))
            members = {m.name: m for m in archive.getmembers() if m.name.startswith(IMAGES) and m.isfile()}
            chosen = [e for e in entries if e.get("category") not in LEFT_OUT and e.get("has_img_google")
                      and IMAGES + e["image"] in members]
            if len(chosen) != EXPECTED or len({e["category"] for e in chosen}) != CATEGORIES:
                raise UserError(f"{tarball} gives {len(chosen)} emoji in {len({e['category'] for e in chosen})} "
                                f"categories, not {EXPECTED} in {CATEGORIES}: is it {PACKAGE} {VERSION}?")
            temp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(temp, ignore_errors=True)
            for entry in chosen:
                target = temp / entry["category"] / entry["image"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(members[IMAGES + entry["image"]]).read())
    except (tarfile.TarError, KeyError, json.JSONDecodeError, OSError) as exc:
        raise UserError(f"cannot read {tarball} as the {PACKAGE} package: {exc}") from None
    (temp / "README.txt").write_text(
        f"{EXPECTED} Noto emoji (RGBA 64 px) from the npm package {PACKAGE} {VERSION}, one subfolder per "
        f"category; laid out by Chorus (engine/bench/emoji.py). Noto Emoji: Apache License 2.0.\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    temp.rename(folder)
    return folder
