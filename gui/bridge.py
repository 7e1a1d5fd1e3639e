"""The engine thread: runs engine calls off the GUI thread and hands back small copied payloads.

This first version loads a data preview; the studio issue extends it to drive the trainer in a
spawned child process. It is the only place where engine results become Qt signals.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot


class _PreviewWorker(QObject):
    sig_loaded = Signal(object, str)   # (n, H, W, C) uint8 array, report text
    sig_failed = Signal(str)

    def __init__(self, source: str, count: int):
        super().__init__()
        self.source, self.count = source, count

    @Slot()
    def run(self) -> None:
        from engine.config import DataConfig
        from engine.data.sources import load_data
        from engine.errors import UserError

        try:
            data = load_data(DataConfig(self.source))
            picks = np.linspace(0, len(data.images) - 1, self.count).astype(int)
            self.sig_loaded.emit(np.ascontiguousarray(data.images[picks]), data.report)
        except UserError as exc:
            self.sig_failed.emit(str(exc))


class EngineBridge(QObject):
    sig_preview_loaded = Signal(object, str)
    sig_error = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: _PreviewWorker | None = None

    def load_preview(self, source: str = "fashion-mnist", count: int = 64) -> None:
        self.shutdown()
        self._thread = QThread()
        self._worker = _PreviewWorker(source, count)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.sig_loaded.connect(self.sig_preview_loaded)
        self._worker.sig_failed.connect(self.sig_error)
        self._worker.sig_loaded.connect(self._thread.quit)
        self._worker.sig_failed.connect(self._thread.quit)
        self._thread.start()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
            self._thread = None
            self._worker = None
