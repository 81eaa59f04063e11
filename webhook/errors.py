"""Errors that end a command with one clear line instead of a traceback."""


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2.

    The message names what was wrong (a file, a flag, a document) so the user can act on it.
    """


class CheckFailed(Exception):
    """A check the user asked for did not pass (verify, doctor): one line, exit 1."""
