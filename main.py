"""Chorus: no arguments opens the studio window; a subcommand runs the headless CLI."""
import multiprocessing
import sys


def run() -> int:
    multiprocessing.freeze_support()  # the GUI's trainer child process in a frozen build
    if len(sys.argv) == 1:
        from gui.app import main as gui_main

        return gui_main()
    from engine.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(run())
