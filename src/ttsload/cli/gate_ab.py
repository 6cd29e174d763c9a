"""`ttsload gate --ab BASE HEAD`: both sides measured in one run, judged on paired ratios.

The stored-baseline gate compares today's run with one measured on another day, so a host whose speed
moved between the two days (17-53 % on unchanged code here) hides or fakes a regression. An A/B run
measures base and head interleaved, under the same noise (bench/regression/ab.py), and judges the
pairs' B/A ratios (bench/regression/abjudge.py). `--ab-noise RUNS` makes the A-against-A study its
thresholds come from (bench/regression/abnoise.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.bench import bounds
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode

if TYPE_CHECKING:
    from ttsload.bench.regression.ab import AbPlan, Pair
    from ttsload.bench.regression.sides import Side

DEFAULT_STRATEGIES, DEFAULT_MODELS = "naive,mmap", "vits"  # the weights invariant's cells (baselines/invariants.toml)
DEFAULT_PAIRS = 6  # the fewest pairs whose sign-test interval reaches 95 %


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("A/B (base and head measured side by side in one run)")
    group.add_argument("--ab", nargs=2, metavar=("BASE", "HEAD"),
                       help="measure both sides interleaved in one run and judge the paired ratios; each side is a "
                            "git ref (installed into a cached venv), a model folder, or a python interpreter")
    group.add_argument("--ab-noise", type=bounds.repeat_arg, metavar="RUNS",
                       help="the A-against-A noise study: RUNS A/B runs of this environment against itself; prints "
                            "the thresholds (--save NAME stores them under BASELINES/ab-noise/)")
    group.add_argument("--save", metavar="NAME", help="with --ab-noise: save the study as BASELINES/ab-noise/NAME.json")
    group.add_argument("--strategy", default=DEFAULT_STRATEGIES,
                       help=f"cells' strategies (default {DEFAULT_STRATEGIES})")
    group.add_argument("--model", default=DEFAULT_MODELS, help=f"cells' models (default {DEFAULT_MODELS})")
    group.add_argument("--pairs", type=bounds.repeat_arg, default=DEFAULT_PAIRS,
                       help=f"pairs per cell (default {DEFAULT_PAIRS})")
    group.add_argument("--duet", action="store_true",
                       help="run A and B at the same time, each pinned to its own core with one thread")
    group.add_argument("--requests", type=bounds.requests_arg, default=1, help="requests per cell (default 1)")
    group.add_argument("--cache", choices=("warm", "cold"), default="warm", help="page cache of model files")
    group.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    group.add_argument("--a-env", action="append", default=[], metavar="KEY=VALUE",
                       help="an environment variable for side A's cells (repeatable; e.g. a planted fault)")
    group.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE", help="the same for side B")
    group.add_argument("--out", type=Path, help="where the A/B run's cells and ab.json go (default results/ab-<time>)")
    group.add_argument("--side-cache", type=Path,
                       help="where git-ref sides' trees and venvs are cached (default $TTSLOAD_HOME/ab)")
    group.add_argument("--no-history", action="store_true", help="do not append the head side to the history store")
    group.add_argument("--ab-thresholds", type=Path, metavar="FILE",
                       help="an A-against-A study to take thresholds from (default: the one in BASELINES/ab-noise/ "
                            "matching this machine class, else the fallbacks)")


def _env(items: list[str], flag: str) -> dict[str, str]:
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes KEY=VALUE, got '{item}'")
        found[key] = value
    return found


def _plan(args: argparse.Namespace) -> AbPlan:
    from ttsload.bench.regression.ab import DUET, SEQUENTIAL, AbPlan

    if not 0.5 <= args.confidence < 1:  # NaN fails this too
        raise UsageError(f"--confidence must be in [0.5, 1), got {args.confidence}")
    cells = [(s, m) for m in args.model.split(",") if m for s in args.strategy.split(",") if s]
    if not cells:
        raise UsageError("--strategy and --model name no cell")
    return AbPlan(cells, args.pairs, DUET if args.duet else SEQUENTIAL,
                  ["--requests", str(args.requests), "--cache", args.cache])


def _sides(args: argparse.Namespace, specs: list[str]) -> tuple[Side, Side] | str:
    """Both sides, built; or the one line saying why one could not be (the gate then could not judge)."""
    from ttsload.bench.models import home
    from ttsload.bench.regression import sides

    cache = args.side_cache or home() / "ab"
    envs = {"A": _env(args.a_env, "--a-env"), "B": _env(args.b_env, "--b-env")}
    try:
        repo = sides.repository(Path.cwd())
    except sides.SideError:
        repo = None
    try:
        found = [sides.resolve(spec, label, repo, cache, envs[label]) for label, spec in zip("AB", specs, strict=True)]
    except sides.SideError as exc:
        return str(exc)
    return found[0], found[1]


def _thresholds(args: argparse.Namespace) -> tuple[dict[str, float], str]:
    from ttsload.bench.harness.environment import fingerprint
    from ttsload.bench.regression import abnoise

    if args.ab_thresholds:
        if not args.ab_thresholds.is_file():
            raise UsageError(f"no A/B noise study at {args.ab_thresholds}")
        data = json.loads(args.ab_thresholds.read_text())
        found = {str(k): float(v) for k, v in (data.get("thresholds_pct") or {}).items()}
        return found, f"thresholds: {args.ab_thresholds}"
    if args.fail:  # METRIC:median:+X% items: these metrics only, at these thresholds
        from ttsload.bench.regression.gate import parse_spec

        rules = parse_spec(args.fail)
        odd = [str(r) for r in rules if r.statistic != "median" or not r.relative or not r.higher_is_worse]
        if odd:
            raise UsageError(f"--fail with --ab takes METRIC:median:+X% items (a ratio of medians), "
                             f"got {', '.join(odd)}")
        return {r.metric: r.threshold for r in rules}, "thresholds: --fail"
    path, found = abnoise.find(args.baselines, fingerprint())
    if path is None:
        return {}, (f"thresholds: the code's fallbacks (no A-against-A study in {args.baselines / abnoise.FOLDER} "
                    "for this machine class: `nox -s ab-noise -- NAME` makes one)")
    return found, f"thresholds: A-against-A study {path} (fallbacks for metrics it lacks)"


def _progress(pair: Pair) -> None:
    said = ", ".join(f"{label} failed: {why}" for label, why in pair.failed.items()) or "ok"
    print(f"ttsload gate --ab: pair {pair.index + 1} {pair.cell} ({pair.order}): {said}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, severity: tuple[int, ...]) -> int:
    """The A/B gate (or its noise study); `severity` orders the exit codes of its parts as the gate's do."""
    if args.ab_noise is not None:
        return _noise(args)
    from ttsload.bench.regression import ab, abjudge

    plan = _plan(args)
    out = args.out or Path("results") / time.strftime("ab-%Y%m%d-%H%M%S")
    thresholds, origin = _thresholds(args)
    built = _sides(args, list(args.ab))
    if isinstance(built, str):
        print(f"ttsload gate: could not judge: {built}")
        _write_json(args, {"verdict": "could not judge", "exit_code": ExitCode.UNJUDGED, "side_error": built})
        return ExitCode.UNJUDGED
    a, b = built
    for side in (a, b):
        print(f"ttsload gate --ab: {side.describe()}", file=sys.stderr)
    pairs = ab.run(a, b, plan, out, on_pair=_progress)
    metrics = tuple(thresholds) if args.fail else abjudge.METRICS
    checks = abjudge.judge_all(pairs, thresholds, metrics, confidence=args.confidence)
    header = [f"A `{a.spec}` against B `{b.spec}`: {len(plan.cells)} cell(s) x {plan.pairs} pairs, {plan.mode}, "
              f"in `{out}`", "", origin, "", ab.host_line(pairs), ""]
    print(abjudge.markdown(checks, header, args.confidence), end="")
    codes = [abjudge.exit_code(checks)]
    verdict: dict[str, Any] = {"mode": plan.mode, "out": str(out), "thresholds": origin,
                               "checks": abjudge.to_json(checks)}
    if args.invariants:
        codes.append(_invariants(args, out / "B", verdict))
    _history(args, out, a, b)
    code = _severest(codes, severity)
    verdict.update({"verdict": {ExitCode.OK: "pass", ExitCode.FAILED: "regression", ExitCode.UNDECIDED: "undecided",
                                ExitCode.UNJUDGED: "could not judge"}.get(code, "?"),
                    "exit_code": code})
    _write_json(args, verdict)
    return code


def _severest(codes: list[int], severity: tuple[int, ...]) -> int:
    return next((c for c in severity if c in codes), ExitCode.OK)


def _invariants(args: argparse.Namespace, folder: Path, verdict: dict[str, Any]) -> int:
    """The in-run invariants on the head side's cells, pooled over its pairs."""
    from ttsload.bench.regression import abresults, invariants

    head = abresults.pooled(folder)
    found = invariants.check(invariants.load(args.invariants), head, args.alpha)
    print(invariants.markdown(found, head.source), end="")
    verdict["invariants"] = invariants.to_json(found)
    return invariants.exit_code(found)


def _history(args: argparse.Namespace, out: Path, a: Side, b: Side) -> None:
    """The head side's cells as one history line marked as an A/B run (the history plot marks it)."""
    from ttsload.bench.regression import abresults

    if getattr(args, "no_history", False) or not any((out / "B").glob("*/results.jsonl")):
        return
    abresults.append_history(out / "B", {"base": a.commit or a.spec, "head": b.commit or b.spec}, commit=b.commit)


def _write_json(args: argparse.Namespace, verdict: dict[str, Any]) -> None:
    if args.json:
        clean = json.loads(json.dumps(verdict, default=lambda v: None if isinstance(v, float) and
                                      not math.isfinite(v) else str(v)))
        args.json.write_text(json.dumps(clean, indent=1) + "\n")


def _noise(args: argparse.Namespace) -> int:
    """RUNS A/B runs of one side against itself (default: this interpreter), then the thresholds they give."""
    from ttsload.bench.harness.environment import fingerprint
    from ttsload.bench.regression import ab, abnoise

    if args.ab_noise < 2:
        raise UsageError(f"--ab-noise needs at least 2 runs, got {args.ab_noise}")
    plan = _plan(args)
    spec = args.ab[0] if args.ab else sys.executable
    built = _sides(args, [spec, spec])
    if isinstance(built, str):
        print(f"ttsload gate: could not judge: {built}")
        return ExitCode.UNJUDGED
    out = args.out or Path("results") / time.strftime("ab-noise-%Y%m%d-%H%M%S")
    runs = [ab.run(*built, plan, out / f"run{index:02d}", on_pair=_progress) for index in range(args.ab_noise)]
    found = abnoise.study(runs, plan.pairs, confidence=args.confidence)
    print(abnoise.markdown(found), end="")
    if args.save:
        print(f"saved: {abnoise.save(found, fingerprint(), args.baselines, args.save)}")
    _write_json(args, found)
    return ExitCode.OK
