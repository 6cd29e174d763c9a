"""The exit codes of the whole `ttsload` command: one table, each code meaning one thing in every command.

A wrapper (a CI step, a Kubernetes Job's retry rule, `nox -s gate`) acts on the code alone, so a code never
doubles for two situations it would handle differently: a failed measurement is not bad input, a check with
too few repetitions is neither, and a crash is none of them. docs/reference/exit-codes.md is generated
from MEANINGS (docs/gen_reference.py), and a test holds it to this table.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    CANNOT_WRITE = 3
    UNJUDGED = 4
    NO_BASELINE = 5
    UNDECIDED = 6
    CRASH = 70  # EX_SOFTWARE (sysexits.h)
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "done: every cell ok, no regression, nothing broken",
    ExitCode.FAILED: "what was measured or checked failed: a cell or a profiling pass (`run`, `profile`), a "
                     "regression or a broken invariant (`gate`), a broken install (`doctor`), a server error "
                     "(`fuzz-http`), a server that does not answer (`client`) or exits by itself (`serve`)",
    ExitCode.USAGE: "bad input, said in one line on stderr: a bad flag, a missing model, a malformed results "
                    "folder or baseline, a results folder another run holds",
    ExitCode.CANNOT_WRITE: "`run` cannot write its results folder (full disk, file size limit): finished cells "
                           "are on disk, `--resume` completes it",
    ExitCode.UNJUDGED: "`gate` could not judge a check (no successful repetition, a metric the current run "
                       "lacks, a non-finite value or threshold): it fails closed",
    ExitCode.NO_BASELINE: "`gate --which`: no baseline for this machine class (`nox -s gate` then runs only the "
                          "invariants' cells)",
    ExitCode.UNDECIDED: "`gate`: a check or invariant with too few repetitions to decide (fewer than 3 a side)",
    ExitCode.CRASH: "an unexpected exception: a bug in ttsload, with its traceback on stderr, never a failed cell",
    ExitCode.INTERRUPTED: "`run` interrupted (Ctrl-C, SIGTERM): finished cells are kept, `--resume` completes it",
}
