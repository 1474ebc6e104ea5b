"""The one user-facing error type: the CLI prints its message on one line and exits 2."""


class DrZeroError(Exception):
    """A problem with the user's input (path, dataset, config) with a one-line message."""
