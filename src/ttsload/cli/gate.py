"""`ttsload gate`: absolute comparisons against the baseline of this machine class, and in-run invariants;
with --ab, base and head measured side by side in one run (cli/gate_ab.py).

The baseline is the one named by --baseline, else the one in --baselines whose fingerprint matches
the current run's machine class. With none, the absolute comparisons are skipped with one line saying
so (new hardware must never fail CI, nor pass it silently) and the invariants still decide.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.cli import gate_ab

INVARIANTS = Path("baselines") / "invariants.toml"  # the committed file (bench/regression/invariants.py)
# Which verdict the exit code reports when the comparison and the invariants differ: a regression, then a
# check that could not be judged, then one with too few repetitions to decide.
SEVERITY = (ExitCode.FAILED, ExitCode.UNJUDGED, ExitCode.UNDECIDED)  # the worst code found wins


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gate", help="compare a run with the baseline of its machine class and check the "
                                         "in-run invariants; exit 1 on a significant regression or a broken one")
    parser.add_argument("--current", type=Path, help="results folder or saved baseline .json (required unless --which)")
    parser.add_argument("--baseline", type=Path, help="results folder or saved baseline .json to compare with "
                        "(default: the baseline in --baselines that matches the current run's machine class)")
    parser.add_argument("--baselines", type=Path, default=Path("baselines"),
                        help="where committed baselines live (default baselines/)")
    parser.add_argument("--fail", metavar="SPEC", help="METRIC:STAT:THRESHOLD[,...], e.g. cold_start_s:median:+10%% "
                        "(default: the gate's metrics with the thresholds the baseline's noise study measured)")
    parser.add_argument("--invariants", type=Path, nargs="?", const=INVARIANTS, metavar="FILE",
                        help=f"also check the in-run invariants of FILE (default {INVARIANTS}); "
                             "needs no baseline")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--host-tolerance", type=float, default=10.0, metavar="PCT",
                        help="skip the timing checks (memory is still judged) when a part of the host calibration, "
                             "over the cells of each run, is slower than the baseline's by more than PCT percent "
                             "and significantly (default 10)")
    parser.add_argument("--which", action="store_true",
                        help="only print the baseline in --baselines that matches this machine's class (exit 0), "
                             f"or the no-baseline line (exit {ExitCode.NO_BASELINE}); runs nothing")
    parser.add_argument("--json", type=Path, help="also write the verdict as JSON here")
    gate_ab.add_arguments(parser)


def no_baseline_line(print_: dict[str, Any]) -> str:
    from ttsload.bench.regression import machines

    return (f"no baseline for this machine class: {machines.describe(print_)}; "
            "run `nox -s baseline -- NAME` to make one")


def run(args: argparse.Namespace) -> int:
    from ttsload.bench.regression import gate, invariants, machines
    from ttsload.bench.regression import resultset as results

    if args.which:
        return _which(args.baselines)
    if args.ab or args.ab_noise is not None:
        return gate_ab.run(args, SEVERITY)
    if args.current is None:
        raise UsageError("ttsload gate needs --current DIR (or --ab BASE HEAD, or --which)")
    if not (0 < args.alpha < 1):  # NaN fails this too: p <= NaN is never true, so nothing would regress
        raise UsageError(f"--alpha must be a number between 0 and 1, got {args.alpha}")
    if not (math.isfinite(args.host_tolerance) and args.host_tolerance >= 0):
        raise UsageError(f"--host-tolerance must be a finite percentage >= 0, got {args.host_tolerance}")
    current = results.load(args.current)
    print_ = machines.fingerprint_of(current.environment)
    verdict: dict[str, Any] = {"machine_class": machines.describe(print_)}
    codes = []
    baseline_path, rejected = (args.baseline, []) if args.baseline else machines.find_baseline(args.baselines, print_)
    if baseline_path is None:
        line = no_baseline_line(print_)
        print(f"ttsload gate: {line} (absolute comparisons skipped)")
        verdict.update({"verdict": "no baseline", "no_baseline": line, "rejected_baselines": rejected, "checks": []})
    else:
        old = results.load(baseline_path)
        if args.fail:
            rules, origin = gate.parse_spec(args.fail), "thresholds: --fail"
        else:
            rules, origin = gate.rules_for(old)
        outcome = gate.compare(old, current, rules, args.alpha, strict=bool(args.fail),
                               host_tolerance=args.host_tolerance / 100)
        for warning in outcome.warnings:
            print(f"ttsload gate: WARNING: {warning}", file=sys.stderr)
        if not args.baseline:
            print(f"ttsload gate: baseline for this machine class: {baseline_path}")
        print(f"ttsload gate: {origin}")
        print(gate.markdown(outcome, old, current, args.alpha), end="")
        verdict.update(gate.verdict_json(outcome, old, current, rules, args.alpha))
        codes.append(outcome.exit_code)
    if args.invariants:
        found = invariants.check(invariants.load(args.invariants), current, args.alpha)
        print(invariants.markdown(found, current.source), end="")
        verdict["invariants"] = invariants.to_json(found)
        codes.append(invariants.exit_code(found))
    code = next((c for c in SEVERITY if c in codes), ExitCode.OK)
    verdict["exit_code"] = code
    if args.json:
        args.json.write_text(json.dumps(verdict, indent=1) + "\n")
    return code


def _which(directory: Path) -> int:
    """For `nox -s gate`: which baseline this machine's runs would be judged against, before running any."""
    from ttsload.bench.harness.environment import fingerprint
    from ttsload.bench.regression import machines

    here = fingerprint()
    found, _ = machines.find_baseline(directory, here)
    print(found if found else no_baseline_line(here))
    return ExitCode.OK if found else ExitCode.NO_BASELINE
