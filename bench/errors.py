"""Errors the CLI turns into one line and a non-zero exit.

The exit codes themselves are one table, bench/exitcodes.py; the EXIT_* names here are that table's members,
under the names older callers import.
"""

from ttsload.bench.exitcodes import ExitCode

EXIT_OK, EXIT_FAILED, EXIT_USAGE = ExitCode.OK, ExitCode.FAILED, ExitCode.USAGE
EXIT_CANNOT_WRITE, EXIT_UNJUDGED, EXIT_NO_BASELINE = ExitCode.CANNOT_WRITE, ExitCode.UNJUDGED, ExitCode.NO_BASELINE
EXIT_CRASH = ExitCode.CRASH


class UsageError(Exception):
    """Bad input from the user: a missing model, an unknown strategy, a bad flag value."""


class ProfilerUnavailable(Exception):
    """A profiler that is not installed or cannot attach; the message says how to fix it."""
