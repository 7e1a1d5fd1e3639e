"""Threads that outlive their window: kept alive until they end (Qt aborts the whole process when a
running QThread is destroyed). Used by the training link and the job thread alike."""
from __future__ import annotations

import atexit

from PySide6.QtCore import QThread

_ORPHANS: list[QThread] = []


def adopt(thread: QThread) -> None:
    """Keep a thread that did not stop in time alive until it does. Cancelled jobs end at their next
    progress report; a training link when its child process has gone."""
    if thread.isRunning() and thread not in _ORPHANS:
        _ORPHANS.append(thread)
        thread.finished.connect(lambda t=thread: t in _ORPHANS and _ORPHANS.remove(t))


@atexit.register
def _wait_for_orphans() -> None:
    for thread in list(_ORPHANS):
        thread.wait()
