"""Errors the CLI turns into one line and a non-zero exit, and the exit codes every command shares.

Each code means one thing across the CLI (the README's exit-code table lists them):
"""

EXIT_OK = 0
EXIT_FAILED = 1  # a cell or profiling pass failed; the gate found a regression or a broken invariant
EXIT_USAGE = 2  # bad input (one line on stderr); the gate: a check with too few repetitions to decide
EXIT_CANNOT_WRITE = 3  # `run` cannot write its results folder (full disk, file size limit)
EXIT_UNJUDGED = 4  # the gate could not judge a check (no successful repetition, no value, a non-finite number)
EXIT_NO_BASELINE = 5  # `gate --which`: no baseline for this machine class
EXIT_CRASH = 70  # an unexpected exception (a bug; traceback on stderr), never 1: a retry rule must tell them apart


class UsageError(Exception):
    """Bad input from the user: a missing model, an unknown strategy, a bad flag value."""


class ProfilerUnavailable(Exception):
    """A profiler that is not installed or cannot attach; the message says how to fix it."""
