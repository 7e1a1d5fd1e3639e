"""The first window shows the bundled data, loaded off the GUI thread."""
from __future__ import annotations




def test_window_shows_bundled_fashion_mnist(qtbot):
    from gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.bridge.sig_preview_loaded, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: "60000 images" in window.status.text(), timeout=5_000)
    pixmap = window.thumbnails.pixmap()
    assert pixmap is not None and pixmap.width() > 200
    window.close()
    assert window.bridge._thread is None
