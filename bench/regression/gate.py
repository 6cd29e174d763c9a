"""The regression gate: compare two result sets cell by cell against thresholds, with significance.

A check regresses only when the change of its statistic is beyond the threshold *and* a one-sided
Mann–Whitney U test over the repetitions says the current side is worse (p <= alpha). Fewer than
`stats.MIN_REPETITIONS` on either side is reported as such, never decided. The gate fails closed: a
check it cannot judge at all (no successful repetition, no value of the metric, a non-finite value or
threshold) is a failure of its own, never a pass. Exit codes (bench/errors.py): 0 no regression,
1 regression, 2 unusable input or an undecided check, 4 a check that could not be judged.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from ttsload.bench.analysis import calibration, stats
from ttsload.bench.analysis.metrics import BY_COLUMN
from ttsload.bench.cells import group_label
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression.resultset import ResultSet

UNJUDGED = "COULD NOT JUDGE"  # the verdict of a check the gate has nothing finite to judge with
ALPHA = 0.05
# The metrics the gate judges by default, with fallback thresholds for a baseline that has no noise
# study: a baseline with one (`ttsload noise --save NAME`) replaces each threshold with the one measured
# on its machine class (rules_for). See baselines/README.md.
# CPU seconds beside wall seconds: a neighbour stealing the other core stretches the clock, not the CPU.
# Memory: anonymous PSS after malloc_trim(0) in every process (the reading that repeats; the untrimmed
# one carries glibc's retention after texts of varied length). Not pss_mb/uss_mb: their file-backed part
# depends on how many other processes map libtorch. No RSS-based metric: file-backed library pages in
# RSS depend on how fresh the venv's files are in the page cache (baselines/README.md).
DEFAULT_SPEC = ("cold_start_s:median:+75%,weights_s:median:+150%,cold_start_cpu_s:median:+50%,"
                "weights_cpu_s:median:+100%,pss_anon_trimmed_mb:median:+10%")
ENVIRONMENT_KEYS = (("cpu",), ("cores_logical",), ("python",), ("packages", "torch"), ("packages", "coqui-tts"))

_RULE = re.compile(r"^(?P<metric>[A-Za-z0-9_]+):(?P<stat>[A-Za-z0-9]+):"
                   r"(?P<sign>[+-]?)(?P<number>\d+(?:\.\d+)?)(?P<pct>%?)$")


@dataclass(frozen=True)
class Rule:
    """One SPEC item, e.g. `cold_start_s:median:+10%` (relative) or `leak_mb_per_1k:max:2` (absolute).

    `+` (or no sign) means higher is worse; `-` means lower is worse (throughput, say).
    """

    metric: str
    statistic: str
    threshold: float
    relative: bool
    higher_is_worse: bool = True
    per_model: tuple[tuple[str, float], ...] = ()  # measured thresholds that differ by model (noise study)

    def for_model(self, model: str) -> Rule:
        """This rule with the threshold measured for `model`'s cells, where the noise study has one."""
        found = dict(self.per_model).get(model)
        return Rule(self.metric, self.statistic, self.threshold if found is None else found, self.relative,
                    self.higher_is_worse)

    def __str__(self) -> str:
        sign = "+" if self.higher_is_worse else "-"
        return f"{self.metric}:{self.statistic}:{sign}{self.threshold:g}{'%' if self.relative else ''}"

    def change(self, baseline: float, current: float) -> float:
        """Signed change, in percent for relative rules; positive means worse."""
        delta = current - baseline if self.higher_is_worse else baseline - current
        if not self.relative:
            return delta
        if baseline == 0:
            return 0.0 if delta == 0 else math.copysign(math.inf, delta)
        return 100.0 * delta / abs(baseline)


def rules_for(baseline: ResultSet, spec: str = DEFAULT_SPEC) -> tuple[list[Rule], str]:
    """The SPEC's rules with each threshold the baseline's noise study measured, where it has one.

    Returns the rules and one line saying where their thresholds came from.
    """
    measured = _mapping((baseline.noise or {}).get("thresholds"))
    by_model = _mapping((baseline.noise or {}).get("thresholds_by_model"))
    rules = []
    for rule in parse_spec(spec):
        found = _mapping(measured.get(rule.metric)).get("threshold_pct")
        per_model = tuple(sorted((str(model), _threshold_value(found_for))
                                 for model, metrics in by_model.items()
                                 if (found_for := _mapping(metrics).get(rule.metric)) is not None))
        rules.append(Rule(rule.metric, rule.statistic, _threshold_value(found), True, rule.higher_is_worse, per_model)
                     if found is not None and rule.relative else rule)
    used = sorted(r.metric for r in rules if _mapping(measured.get(r.metric)).get("threshold_pct") is not None)
    if not used:
        return rules, "thresholds: the code's fallbacks (this baseline has no noise study)"
    study = baseline.noise
    by_model_note = " per model" if any(r.per_model for r in rules) else ""
    return rules, (f"thresholds measured{by_model_note} on this machine class by a noise study ({study.get('runs')} "
                   f"runs, {study.get('source', '?')}) for {', '.join(used)}; fallbacks for the rest")


def _mapping(value: object) -> dict[str, Any]:  # a section of a baseline file: anything
    return value if isinstance(value, dict) else {}


def _threshold_value(value: object) -> float:
    """A stored threshold; anything but a real number is NaN, so its checks are COULD NOT JUDGE, never passed."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def parse_spec(spec: str) -> list[Rule]:
    """Parse `METRIC:STAT:THRESHOLD[,...]`; any malformed item is a UsageError naming it."""
    rules = []
    for item in (part.strip() for part in spec.split(",")):
        match = _RULE.match(item)
        if not match:
            raise UsageError(f"bad --fail item '{item}': expected METRIC:STAT:THRESHOLD such as "
                             f"cold_start_s:median:+10% or leak_mb_per_1k:max:2")
        if match["stat"] not in stats.STATISTICS:
            raise UsageError(f"bad --fail item '{item}': statistic '{match['stat']}' is not one of "
                             f"{', '.join(stats.STATISTICS)}")
        rules.append(Rule(match["metric"], match["stat"], float(match["number"]), bool(match["pct"]),
                          match["sign"] != "-"))
    return rules


@dataclass
class Check:
    """One rule applied to one cell, and what was concluded."""

    cell: str
    rule: str
    metric: str
    baseline: float | None
    current: float | None
    change: float | None
    threshold: str
    p_value: float | None
    n_baseline: int
    n_current: int
    verdict: str  # ok | improved | not significant | REGRESSION | insufficient repetitions | COULD NOT JUDGE
    note: str = ""  # why a check could not be judged


def _unjudgeable(rule: Rule, baseline: list[float], current: list[float]) -> str:
    """Why this check cannot be judged at all, or "" when it can: what is absent or not a finite number."""
    if not math.isfinite(rule.threshold):
        return f"threshold {rule.threshold} is not a finite number"
    if not current:
        return f"the current run has no {rule.metric} value for this cell (no successful repetition reported it)"
    if not baseline:
        return f"the baseline has no {rule.metric} value for this cell"
    for side, values in (("baseline", baseline), ("current run", current)):
        if not all(math.isfinite(v) for v in values):
            return f"the {side} holds a non-finite {rule.metric} value"
    return ""


def judge(rule: Rule, baseline: list[float], current: list[float], alpha: float = ALPHA, cell: str = "") -> Check:
    """Apply one rule to the repetitions of one cell (also used by history to find steps)."""
    n_base, n_cur = len(baseline), len(current)
    if reason := _unjudgeable(rule, baseline, current):
        return Check(cell, str(rule), rule.metric, None, None, None, _threshold(rule), None, n_base, n_cur,
                     UNJUDGED, reason)
    base, cur = stats.statistic(baseline, rule.statistic), stats.statistic(current, rule.statistic)
    change = rule.change(base, cur)
    if min(n_base, n_cur) < stats.MIN_REPETITIONS:  # shown, never decided
        return Check(cell, str(rule), rule.metric, base, cur, change, _threshold(rule), None, n_base, n_cur,
                     "insufficient repetitions")
    if change > rule.threshold:
        p = stats.p_worse(current, baseline, rule.higher_is_worse)
        verdict = "REGRESSION" if p <= alpha else "not significant"
    elif change < -rule.threshold:
        p = stats.p_worse(current, baseline, not rule.higher_is_worse)
        verdict = "improved" if p <= alpha else "ok"
    else:
        p, verdict = stats.p_worse(current, baseline, rule.higher_is_worse), "ok"
    return Check(cell, str(rule), rule.metric, base, cur, change, _threshold(rule), p, n_base, n_cur, verdict)


def _threshold(rule: Rule) -> str:
    return f"{'+' if rule.higher_is_worse else '-'}{rule.threshold:g}{'%' if rule.relative else ''}"


@dataclass
class Outcome:
    checks: list[Check]
    warnings: list[str]
    new_cells: list[str]
    host_speed: str = ""  # the line comparing the hosts' calibration readings (bench/analysis/calibration.py)

    @property
    def exit_code(self) -> ExitCode:
        verdicts = {c.verdict for c in self.checks}
        if "REGRESSION" in verdicts:
            return ExitCode.FAILED
        if UNJUDGED in verdicts:
            return ExitCode.UNJUDGED
        return ExitCode.UNDECIDED if "insufficient repetitions" in verdicts else ExitCode.OK

    @property
    def verdict(self) -> str:
        return {ExitCode.OK: "pass", ExitCode.FAILED: "regression", ExitCode.UNDECIDED: "undecided",
                ExitCode.UNJUDGED: "could not judge"}[self.exit_code]


def is_timing(metric: str) -> bool:
    """A metric in seconds: what a slower or faster host moves, unlike memory."""
    return metric in BY_COLUMN and BY_COLUMN[metric].unit == "s"


def compare(baseline: ResultSet, current: ResultSet, rules: list[Rule], alpha: float = ALPHA,
            strict: bool = True, host_tolerance: float = calibration.TOLERANCE) -> Outcome:
    """Every rule on every baseline cell; unusable input raises UsageError before anything is judged.

    Not `strict` (the default SPEC): a rule whose metric the baseline lacks (a baseline older than the
    metric) is left out with a warning saying so, instead of refusing the whole comparison. A metric the
    current run lacks is never left out: each of its checks is COULD NOT JUDGE (fail closed).
    When the current host ran the calibration slower than the baseline's beyond `host_tolerance`, the
    timing rules are left out with one warning (the host changed, not necessarily the code); memory is
    still judged. A faster host is judged, with a warning that it can hide a regression.
    """
    skipped: list[str] = []
    if not strict:
        known = baseline.metrics()
        skipped = [f"{r.metric} is not in the baseline: rule {r} not checked (re-measure the baseline to gate it)"
                   for r in rules if r.metric not in known]
        rules = [r for r in rules if r.metric in known]
    host, host_line = calibration.compare(calibration.of_cells(baseline.cells.values()),
                                          calibration.of_cells(current.cells.values()), host_tolerance)
    timing = sorted({r.metric for r in rules if is_timing(r.metric)})
    if host == calibration.SLOWER and timing:
        skipped.insert(0, f"timing checks skipped ({', '.join(timing)}): this host ran the calibration slower than "
                          f"the baseline's beyond ±{100 * host_tolerance:g} %, so a slower timing could be the host; "
                          "memory checks still judged")
        rules = [r for r in rules if not is_timing(r.metric)]
    elif host == calibration.FASTER and timing:
        skipped.insert(0, "this host ran the calibration faster than the baseline's: timing checks judged, but a "
                          "regression as large as the host's speed-up could be hidden")
    _check_usable(baseline, current, rules)
    checks = [judge(rule.for_model(key[1]), baseline.cells[key].get(rule.metric, []),
                    current.cells[key].get(rule.metric, []), alpha, group_label(key))
              for key in sorted(baseline.cells) for rule in rules]
    for check, key in zip(checks, [key for key in sorted(baseline.cells) for _ in rules], strict=True):
        if check.verdict == UNJUDGED and not check.n_current and not current.repetitions.get(key, 1):
            check.note = f"no successful repetition in the current run ({current.failed.get(key, 0)} failed)"
    new = [group_label(k) for k in sorted(set(current.cells) - set(baseline.cells))]
    return Outcome(checks, skipped + environment_warnings(baseline, current) + _option_warnings(baseline, current),
                   new, host_line)


def _check_usable(baseline: ResultSet, current: ResultSet, rules: list[Rule]) -> None:
    missing = sorted(set(baseline.cells) - set(current.cells))
    if missing:
        raise UsageError(f"{len(missing)} baseline cell(s) missing from {current.source}: "
                         f"{', '.join(group_label(k) for k in missing)}")
    known = baseline.metrics()  # a metric the current run lacks is judged per check: COULD NOT JUDGE
    for rule in rules:
        if rule.metric not in known:
            raise UsageError(f"metric '{rule.metric}' is not in {baseline.source} "
                             f"(its metrics: {', '.join(sorted(known))})")


def _lookup(environment: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        environment = environment.get(key, {}) if isinstance(environment, dict) else {}
    return environment if environment != {} else None


def environment_warnings(baseline: ResultSet, current: ResultSet) -> list[str]:
    """Differences that make timings and memory incomparable: said loudly, but the gate still runs."""
    differences = []
    for path in ENVIRONMENT_KEYS:
        old, new = _lookup(baseline.environment, path), _lookup(current.environment, path)
        if old != new:
            differences.append(f"{'.'.join(path)} {old!r} -> {new!r}")
    warnings = []
    if differences:
        warnings.append(f"the baseline was measured in a different environment ({'; '.join(differences)}): "
                        "differences below may be the machine, not the code")
    loads = [(side.environment.get("load_average") or [None])[0] for side in (baseline, current)]
    if None not in loads and max(loads) > 2 * max(min(loads), 0.5):
        warnings.append(f"the runs started at load averages {loads[0]:.1f} (baseline) and {loads[1]:.1f} "
                        "(current): timings moved with the machine's other work, not only with the code")
    return warnings


def _option_warnings(baseline: ResultSet, current: ResultSet) -> list[str]:
    differ = [f"{k} {baseline.options.get(k)!r} -> {current.options.get(k)!r}"
              for k in sorted(set(baseline.options) | set(current.options))
              if baseline.options.get(k) != current.options.get(k)]
    return [f"the runs used different options ({'; '.join(differ)})"] if differ else []


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def format_change(check: Check) -> str:
    if check.change is None:
        return "-"
    return f"{check.change:+.1f}%" if check.threshold.endswith("%") else f"{check.change:+.3g}"


def markdown(outcome: Outcome, baseline: ResultSet, current: ResultSet, alpha: float = ALPHA) -> str:
    """A table fit for a CI log or a pull-request comment."""
    regressions = [c for c in outcome.checks if c.verdict == "REGRESSION"]
    unjudged = [c for c in outcome.checks if c.verdict == UNJUDGED]
    title = {"pass": "pass: no regression", "regression": f"FAIL: {len(regressions)} regression(s)",
             "could not judge": f"FAIL: could not judge {len(unjudged)} check(s)",
             "undecided": "UNDECIDED: too few repetitions to judge some checks"}[outcome.verdict]
    lines = [f"## ttsload gate: {title}", "",
             f"baseline `{baseline.source}` (run {baseline.run_id}, git {baseline.git_sha or '?'}) vs "
             f"current `{current.source}` (run {current.run_id}, git {current.git_sha or '?'}); "
             f"a check regresses when beyond its threshold and one-sided Mann–Whitney p <= {alpha:g}", ""]
    lines += [outcome.host_speed, ""] if outcome.host_speed else []
    lines += [f"> **WARNING:** {w}" for w in outcome.warnings] + ([""] if outcome.warnings else [])
    lines += ["| cell | metric | stat | baseline | current | change | threshold | p | n base/cur | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for c in outcome.checks:
        verdict = f"**{c.verdict}**" if c.verdict in ("REGRESSION", UNJUDGED, "insufficient repetitions") else c.verdict
        p = f"{c.p_value:.3f}" if c.p_value is not None else "-"
        lines.append(f"| {c.cell} | {c.metric} | {c.rule.split(':')[1]} | {_fmt(c.baseline)} | {_fmt(c.current)} "
                     f"| {format_change(c)} | {c.threshold} | {p} | {c.n_baseline}/{c.n_current} | {verdict} |")
    if outcome.new_cells:
        lines += ["", f"not gated (no baseline): {', '.join(outcome.new_cells)}"]
    lines += [""] if regressions or unjudged else []
    lines += [f"COULD NOT JUDGE {c.cell}: {c.rule}: {c.note}" for c in unjudged]
    for c in regressions:
        lines.append(f"REGRESSION {c.cell}: {c.metric} {c.rule.split(':')[1]} {_fmt(c.baseline)} -> "
                     f"{_fmt(c.current)} ({format_change(c)}, threshold {c.threshold}, p={c.p_value:.3f})")
    return "\n".join(lines) + "\n"


def verdict_json(outcome: Outcome, baseline: ResultSet, current: ResultSet, rules: list[Rule],
                 alpha: float = ALPHA) -> dict[str, Any]:
    return {"verdict": outcome.verdict, "exit_code": outcome.exit_code, "alpha": alpha,
            "rules": [str(r) for r in rules], "baseline": baseline.source, "current": current.source,
            "warnings": outcome.warnings, "new_cells": outcome.new_cells, "host_speed": outcome.host_speed,
            "checks": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                        for k, v in asdict(c).items()} for c in outcome.checks]}

