"""Where bundled resources live, in a source checkout, an installed package and a frozen build."""
from __future__ import annotations

import sys
from pathlib import Path


def resource_path(*parts: str) -> Path:
    frozen_root = getattr(sys, "_MEIPASS", None)  # PyInstaller unpacks data beside the app
    root = Path(frozen_root) if frozen_root else Path(__file__).resolve().parent.parent
    return root.joinpath("resources", *parts)
