"""What the studio remembers between sessions (QSettings) and where user data lives (platformdirs).

Tests point QSettings at a temporary folder (``QSettings.setPath``) and ``CHORUS_USER_DATA`` at a
temporary user data dir, so they never touch a real user's settings or runs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "Chorus"
APPLICATION = "Chorus Studio"
MAX_RECENT = 8


def qsettings() -> QSettings:
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def user_data_dir() -> Path:
    override = os.environ.get("CHORUS_USER_DATA")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("Chorus", "Chorus"))


def new_run_path() -> Path:
    """A fresh, not yet existing run folder under the user data dir."""
    runs = user_data_dir() / "runs"
    stem = time.strftime("run-%Y%m%d-%H%M%S")
    path, index = runs / stem, 1
    while path.exists():
        index += 1
        path = runs / f"{stem}-{index}"
    return path


def recent_runs() -> list[str]:
    value = qsettings().value("recent_runs", [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if str(v)]


def add_recent_run(path: str | Path) -> list[str]:
    path = str(Path(path).resolve())
    runs = [path] + [p for p in recent_runs() if p != path]
    runs = runs[:MAX_RECENT]
    qsettings().setValue("recent_runs", runs)
    return runs


def forget_recent_run(path: str | Path) -> list[str]:
    path = str(Path(path).resolve())
    runs = [p for p in recent_runs() if p != path]
    qsettings().setValue("recent_runs", runs)
    return runs


def save_geometry(geometry: QByteArray, state: QByteArray) -> None:
    settings = qsettings()
    settings.setValue("window/geometry", geometry)
    settings.setValue("window/state", state)


def load_geometry() -> tuple[QByteArray | None, QByteArray | None]:
    settings = qsettings()
    geometry, state = settings.value("window/geometry"), settings.value("window/state")
    return (geometry if isinstance(geometry, QByteArray) else None,
            state if isinstance(state, QByteArray) else None)
