"""Chorus: no arguments opens the studio window; a subcommand runs the headless CLI.

``--self-test`` checks the whole engine without a window; ``--smoke-gui`` opens the window, reports
when it is shown and closes it (both are how a packaged build is checked).
"""
import multiprocessing
import os
import sys


def ensure_streams() -> None:
    """A windowed build (no console) has sys.stdout/sys.stderr None; print() must still work."""
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def run() -> int:
    multiprocessing.freeze_support()  # the GUI's trainer child process in a frozen build
    ensure_streams()
    if len(sys.argv) == 1:
        from gui.app import main as gui_main

        return gui_main()
    if sys.argv[1] == "--self-test":
        from engine.self_test import main as self_test_main

        return self_test_main(sys.argv[2:])
    if sys.argv[1] == "--smoke-gui":
        from gui.smoke import main as smoke_main

        return smoke_main(sys.argv[2:])
    from engine.cli import main as cli_main

    return cli_main(sys.argv[1:], benches={"ui": "gui.bench_ui"})  # the engine's CLI never imports the GUI


def leave(code: int) -> None:
    """Exit with ``code``. A torchrun rank (``--distributed``) skips the interpreter's teardown once its
    output is flushed: gloo's C++ threads outlive ``destroy_process_group`` and a rank torn down
    while they wind down aborted ("terminate called without an active exception", SIGABRT) in about
    1 CI run in 5, though everything it had to do was done (pytorch/pytorch#190489, #179291)."""
    if "--distributed" not in sys.argv:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(run())
