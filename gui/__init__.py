"""Chorus studio window (PySide6). Talks to the engine only through gui/bridge.py."""
