"""main.py, the entry point of the source tree and of the packaged app."""
from __future__ import annotations

import sys


def test_a_windowed_build_without_console_streams_gets_writable_ones(monkeypatch):
    import main

    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    main.ensure_streams()
    try:
        assert sys.stdout.write("progress\n") == 9 and sys.stderr.write("traceback\n") == 10
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.close()
