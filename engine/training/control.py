"""Stop and pause flags the trainer checks every step.

Works with ``threading.Event`` (same process) and ``multiprocessing.Event`` (the GUI's child
process) alike: anything with ``is_set()`` and ``wait(timeout)``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol


class Flag(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass
class Control:
    stop: Flag = field(default_factory=threading.Event)
    pause: Flag = field(default_factory=threading.Event)
    resume: Flag = field(default_factory=threading.Event)

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def wait_while_paused(self, step: int = 0) -> None:
        """Block while paused at ensemble ``step``; return at once on resume or stop (no polling loop
        on the hot path)."""
        while self.pause.is_set() and not self.stop.is_set():
            self.resume.wait(0.1)

    def request_pause(self) -> None:
        self.resume.clear()
        self.pause.set()

    def request_resume(self) -> None:
        self.pause.clear()
        self.resume.set()

    def request_stop(self) -> None:
        self.stop.set()
        self.resume.set()
