"""Errors a user can cause. The CLI turns them into one line and exit code 2; the GUI into a message."""


class UserError(Exception):
    """Bad input from the user (a file, a folder, a number, a device): say what and how to fix it."""


class DataNotFound(UserError):
    """The data a run or config names is not where it says (moved, renamed, never there)."""
