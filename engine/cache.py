"""Where Chorus keeps what it can make again (decoded folders, evaluation judges, features): the
user's cache dir, or ``$CHORUS_CACHE_DIR`` (the self-test's throw-away cache)."""
from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir

CACHE_ENV = "CHORUS_CACHE_DIR"


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path(user_cache_dir("chorus", appauthor=False))
