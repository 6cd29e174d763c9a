"""The CLI's argument errors, in this process (`ttsload.cli.main.main`): exit 2 and one line naming what
was wrong, before any model is built or any cell starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli
from ttsload import __version__


def _usage_error(done) -> str:
    """The single `ttsload ...: error: ...` line of an exit-2 run (argparse puts its usage lines before it)."""
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert done.returncode == 2 and len(errors) == 1 and not done.stdout, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return errors[0]


@pytest.mark.parametrize("args, message", [
    ([], "the following arguments are required: command"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["run", "--repeat", "0"], "argument --repeat: must be at least 1 and at most 1000, got 0"),
    (["run", "--requests", "-3"], "argument --requests: must be at least 1 and at most 100000, got -3"),
    (["run", "--requests", "ten"], "argument --requests: expected a whole number, got 'ten'"),
    (["run", "--threads", "0"], "argument --threads: must be at least 1 and at most 1024, got 0"),
    (["run", "--memory-limit", "0"], "argument --memory-limit: must be at least 1 and at most 16777216, got 0"),
    (["run", "--cache", "hot"], "argument --cache: invalid choice: 'hot'"),
    (["run", "--shard-by", "model"], "argument --shard-by: invalid choice: 'model'"),
    (["run", "--timeout", "soon"], "argument --timeout: expected a number of seconds, got 'soon'"),
    (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["report"], "the following arguments are required: folder"),
    (["merge", "a", "b"], "the following arguments are required: --out"),
    (["merge", "--out", "x"], "the following arguments are required: DIR"),
    (["models"], "the following arguments are required: models_command"),
    (["models", "build"], "the following arguments are required: names"),
    (["baseline", "save", "folder"], "the following arguments are required: name"),
    (["gate", "--alpha", "often"], "argument --alpha: invalid float value: 'often'"),
    (["profile", "--strategy", "mmap"], "the following arguments are required: --tool"),
    (["history"], "the following arguments are required: metric"),
])
def test_argument_errors_exit_2_with_one_line(args, message):
    assert message in _usage_error(cli(*args))


@pytest.mark.parametrize("args, message", [
    (["gate"], "ttsload gate needs --current DIR (or --ab BASE HEAD, or --which)"),
    (["run", "--scenario", "no-such-scenario"], "unknown scenario 'no-such-scenario'"),
    (["run", "--strategy", "no-such-strategy", "--model", "vits-tiny"], "no-such-strategy"),
    (["run", "--strategy", "resident+no-such-loader", "--model", "vits-tiny"], "no-such-loader"),
    (["run", "--shard", "3/3"], "0-based, 0..2"),
    (["run", "--shard", "half"], "expected I/N"),
    (["run", "--profile", "no-such-profiler"], "no-such-profiler"),
    (["gate", "--current", "{tmp}/nope"], "no such results folder"),
    (["report", "{tmp}"], "no results.jsonl in {tmp}"),
    (["merge", "{tmp}", "--out", "{tmp}/out"], "no results.jsonl in {tmp}"),
])
def test_bad_values_the_parser_accepts_are_one_line_usage_errors(args, message, tmp_path: Path):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "run":
        args += ["--out", str(tmp_path / "out"), "--no-history"]
    line = _usage_error(cli(*args))
    assert line.startswith("ttsload: error: ") and message.replace("{tmp}", str(tmp_path)) in line, line
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_version_and_help_exit_0():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"ttsload {__version__}"
    helped = cli("run", "--help")
    assert helped.returncode == 0 and "--strategy" in helped.stdout and "--shard" in helped.stdout
