"""Chorus engine: data, members, training, fusion, metrics and the run store. Never imports Qt."""

__version__ = "0.1.0"
