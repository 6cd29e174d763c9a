"""Errors the CLI turns into one line and a non-zero exit."""


class UsageError(Exception):
    """Bad input from the user: a missing model, an unknown strategy, a bad flag value."""


class ProfilerUnavailable(Exception):
    """A profiler that is not installed or cannot attach; the message says how to fix it."""
