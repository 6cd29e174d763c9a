"""`ttsload noise`: run one configuration k times, cells interleaved, and measure what the gate can see.

The run is a plain `ttsload run --repeat K` (repetitions outermost, so drift hits every cell alike),
or an existing results folder (--from). The study (bench/regression/noise.py) gives per metric the
CV and the smallest change the gate would detect with its repetition counts; --save NAME stores the
run as the baseline of this machine class with those thresholds in it, so the gate's thresholds are
measured data per machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode

if TYPE_CHECKING:
    from ttsload.bench.regression.resultset import ResultSet

GATE_REPEAT = 3  # what `nox -s gate` runs (noxfile.GATE_REPEAT)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("noise", help="run one configuration k times (cells interleaved): per metric the CV and "
                                          "the smallest change the gate detects; optionally save it as a baseline")
    parser.add_argument("--from", dest="source", type=Path, metavar="DIR",
                        help="study this results folder (or baseline .json) instead of running")
    parser.add_argument("--strategy", help="comma list of strategies (default: the run's default)")
    parser.add_argument("--model", help="comma list of models")
    parser.add_argument("--scenario", default="single", help="scenario (default single)")
    parser.add_argument("--requests", type=int, default=1, help="requests per cell (default 1)")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of every cell, interleaved (default 5)")
    parser.add_argument("--cache", choices=("warm", "cold"), default="warm")
    parser.add_argument("--gate-repeat", type=int, default=GATE_REPEAT,
                        help=f"repetitions of the gate's own run (default {GATE_REPEAT})")
    parser.add_argument("--baseline-repeat", type=int,
                        help="repetitions of the baseline compared against (default: --runs, as with --save)")
    parser.add_argument("--alpha", type=float, default=0.05, help="the gate's significance level (default 0.05)")
    parser.add_argument("--out", type=Path, help="results folder of the run (default results/noise-<date-time>)")
    parser.add_argument("--save", metavar="NAME", nargs="?", const="",
                        help="save the run as baselines/NAME.json with its thresholds (NAME default: from the "
                             "machine class, e.g. amd-epyc-2cpu-6e0b758c3887)")
    parser.add_argument("--dir", type=Path, default=Path("baselines"), help="where baselines live (default baselines/)")
    parser.add_argument("--json", type=Path, help="also write the study as JSON here")


def _run(args: argparse.Namespace) -> Path:
    """`ttsload run --repeat RUNS` in a child process, as a user would type it (its progress goes to the terminal)."""
    import subprocess

    from ttsload.bench.procs import python_module

    if args.runs < 3:
        raise UsageError(f"--runs {args.runs}: a noise study needs at least 3 runs")
    out = args.out or Path("results") / time.strftime("noise-%Y%m%d-%H%M%S")
    argv = ["run", "--scenario", args.scenario, "--requests", str(args.requests), "--repeat", str(args.runs),
            "--cache", args.cache, "--out", str(out), "--no-history"]
    argv += ["--strategy", args.strategy] if args.strategy else []
    argv += ["--model", args.model] if args.model else []
    code = subprocess.run(python_module("ttsload", *argv)).returncode
    if code not in (0, 1):  # 1: some cell failed; the study uses the repetitions that succeeded
        raise UsageError(f"the noise run into {out} failed (exit {code})")
    return out


def default_name(environment: dict[str, Any]) -> str:
    """A file name for this machine class: CPU words, cores and the class id (amd-epyc-2cpu-6e0b758c3887)."""
    import re

    from ttsload.bench.regression import machines

    print_ = machines.fingerprint_of(environment)
    words = [w for w in re.findall(r"[a-z0-9]+", str(print_.get("cpu")).lower()) if w not in ("r", "tm", "processor")]
    return f"{'-'.join(words[:2]) or 'cpu'}-{print_.get('cores_logical')}cpu-{machines.machine_class(print_)}"


def save(result: ResultSet, found: dict[str, Any], name: str, directory: Path) -> Path:
    """Write the run as `directory/NAME.json` with the study in it; refuse to overwrite another machine class's."""
    from ttsload.bench.regression import machines

    if name == "":
        name = default_name(result.environment)
    if "/" in name or name.startswith("."):
        raise UsageError(f"baseline name '{name}' must be a plain file name")
    target = directory / f"{name}.json"
    mine = machines.fingerprint_of(result.environment)
    if target.is_file():
        theirs = machines.fingerprint_of(json.loads(target.read_text(encoding="utf-8")).get("environment") or {})
        differ = machines.differences(theirs, mine)
        if differ:
            raise UsageError(f"{target} is the baseline of another machine class ({'; '.join(differ)}): "
                             "choose another NAME")
    result.noise = {k: v for k, v in found.items() if k != "cells"}
    data = {**result.to_json(), "name": name, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return target


def run(args: argparse.Namespace) -> int:
    from ttsload.bench.regression import noise
    from ttsload.bench.regression import resultset as results

    folder = args.source or _run(args)
    result = results.load(folder)
    runs = max(result.repetitions.values(), default=0)
    found = noise.study(result, baseline_n=args.baseline_repeat or runs, gate_n=args.gate_repeat, alpha=args.alpha)
    if not found["thresholds"]:
        raise UsageError(f"{folder}: no cell has 2 or more successful repetitions to measure noise from")
    print(noise.markdown(found), end="")
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")
    if args.save is not None:
        target = save(result, found, args.save, args.dir)
        print(f"baseline '{target.stem}' with measured thresholds: {target}")
    return ExitCode.OK
