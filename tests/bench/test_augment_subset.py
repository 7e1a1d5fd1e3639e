"""`bench augment`'s subset of a folder: stratified by class, the same every time, links not copies."""
from __future__ import annotations

from pathlib import Path

from engine.bench.augment import subset_folder


def _folder(root: Path) -> Path:
    source = root / "emoji"
    for cls, count in (("faces", 60), ("animals", 30), ("flags", 10)):
        (source / cls).mkdir(parents=True)
        for i in range(count):
            (source / cls / f"{cls}-{i:03}.png").write_bytes(b"png")
    return source


def test_the_subset_keeps_each_class_share_and_is_the_same_every_time(tmp_path):
    source = _folder(tmp_path)
    folder = subset_folder(source, 30, holdout=0.4)  # 50 pictures: 30 to train on, 20 held out
    counts = {d.name: len(list(d.iterdir())) for d in folder.iterdir() if d.is_dir()}
    assert counts == {"faces": 30, "animals": 15, "flags": 5}
    first = sorted(p.name for p in (folder / "faces").iterdir())
    assert subset_folder(source, 30, holdout=0.4) == folder
    assert sorted(p.name for p in (folder / "faces").iterdir()) == first
    assert all((folder / "faces" / name).resolve().parent == source / "faces" for name in first)
