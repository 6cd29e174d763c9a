"""In-run invariants: ratios between two cells of the same run, which hold on any machine.

An absolute comparison needs a baseline of the same machine class; a ratio inside one run does not
(mmap's weights phase is a fraction of eager's on a Xeon and on an EPYC alike). Each invariant of
`baselines/invariants.toml` names two cells, a metric, a bound on median(left) / median(right) and
the reason for that bound. One whose cells are absent from the run is reported as not checked, never
as failed: a quick run need not hold every scenario. One whose cells ran but give nothing to judge (no
successful repetition, no value of the metric, a non-finite or non-positive median) could not be judged:
that fails the gate with its own exit code (fail closed), since the cells were meant to be checked.

A ratio of medians over its bound breaks the invariant only when the repetitions say so: a one-sided
Mann–Whitney test that left's values exceed max_ratio x right's (p <= alpha). Three medians of a noisy
host moved mmap/naive weights to 0.547 and worker/singleton p50 to 1.288 on unchanged code (session 7);
a real break (mmap copying again, a slow transport) moves every repetition, which this test sees.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomllib

from ttsload.bench.analysis import stats
from ttsload.bench.cells import group_label
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression.resultset import ResultSet

OK, BROKEN, NOT_CHECKED = "ok", "BROKEN", "not checked"
OVER_NOISE = "over, not significant"  # the medians' ratio is over the bound, the repetitions do not show it
UNDECIDED = "over, too few repetitions"
UNJUDGED = "COULD NOT JUDGE"  # the cells ran, but there is nothing finite to take a ratio of
ALPHA = 0.05


@dataclass(frozen=True)
class Invariant:
    """median(`left`.metric) <= `max_ratio` x median(`right`.metric); cells are strategy/model/scenario."""

    name: str
    metric: str
    left: str
    right: str
    max_ratio: float
    reason: str


@dataclass
class Verdict:
    name: str
    metric: str
    left: str
    right: str
    max_ratio: float
    ratio: float | None
    verdict: str  # ok | BROKEN | over, not significant | over, too few repetitions | not checked | COULD NOT JUDGE
    note: str = ""
    p_value: float | None = None


def load(path: Path) -> list[Invariant]:
    """Read an invariants file; anything malformed is a UsageError naming the file and the entry."""
    if not path.is_file():
        raise UsageError(f"no invariants file at {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    found = []
    for index, entry in enumerate(data.get("invariant", [])):
        where = f"{path}: invariant[{index}]"
        missing = [k for k in ("name", "metric", "left", "right", "max_ratio", "reason") if k not in entry]
        if missing:
            raise UsageError(f"{where} lacks {', '.join(missing)}")
        for side in ("left", "right"):
            if str(entry[side]).count("/") != 2:
                raise UsageError(f"{where}: {side} must be STRATEGY/MODEL/SCENARIO, got {entry[side]!r}")
        bound = entry["max_ratio"]
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not 0 < bound < math.inf:
            raise UsageError(f"{where}: max_ratio must be a positive finite number, got {bound!r}")
        found.append(Invariant(str(entry["name"]), str(entry["metric"]), str(entry["left"]), str(entry["right"]),
                               float(entry["max_ratio"]), str(entry["reason"])))
    if not found:
        raise UsageError(f"{path} holds no [[invariant]] entries")
    return found


def _values(result: ResultSet, cell: str, metric: str) -> list[float] | None:
    """The cell's values of the metric; None when the cell is not in the run at all."""
    by_label = {group_label(key): values for key, values in result.cells.items()}
    return None if cell not in by_label else list(by_label[cell].get(metric) or [])


def _over(inv: Invariant, left: list[float], right: list[float], alpha: float) -> tuple[str, float | None]:
    """The verdict on a ratio of medians over its bound: BROKEN only if left > max_ratio x right is significant."""
    if min(len(left), len(right)) < stats.MIN_REPETITIONS:
        return UNDECIDED, None
    p = stats.p_worse(left, [inv.max_ratio * value for value in right])
    return (BROKEN if p <= alpha else OVER_NOISE), p


def check(invariants: list[Invariant], result: ResultSet, alpha: float = ALPHA) -> list[Verdict]:
    verdicts = []
    for inv in invariants:
        left, right = _values(result, inv.left, inv.metric), _values(result, inv.right, inv.metric)
        base = (inv.name, inv.metric, inv.left, inv.right, inv.max_ratio)
        if left is None or right is None:
            absent = [c for c, v in ((inv.left, left), (inv.right, right)) if v is None]
            note = f"no {inv.metric} for {' and '.join(absent)} in this run"
            verdicts.append(Verdict(*base, None, NOT_CHECKED, note))
            continue
        if not left or not right:
            empty = [c for c, v in ((inv.left, left), (inv.right, right)) if not v]
            note = f"{' and '.join(empty)} ran but gave no {inv.metric} (no successful repetition reported it)"
            verdicts.append(Verdict(*base, None, UNJUDGED, note))
            continue
        right_median = stats.statistic(right, "median")
        if not all(math.isfinite(v) for v in left + right) or right_median <= 0:
            note = f"no ratio: a non-finite {inv.metric}, or {inv.right}'s median is {right_median:g}"
            verdicts.append(Verdict(*base, None, UNJUDGED, note))
            continue
        ratio = stats.statistic(left, "median") / right_median
        verdict, p = (OK, None) if ratio <= inv.max_ratio else _over(inv, left, right, alpha)
        note = f"{len(left)}/{len(right)} repetitions" if verdict != OK else ""
        verdicts.append(Verdict(*base, ratio, verdict, note, p))
    return verdicts


def exit_code(verdicts: list[Verdict]) -> ExitCode:
    """1 on a broken invariant, 4 when one could not be judged, 2 when one is over its bound with too few
    repetitions to decide, else 0."""
    found = {v.verdict for v in verdicts}
    return (ExitCode.FAILED if BROKEN in found else ExitCode.UNJUDGED if UNJUDGED in found
            else ExitCode.UNDECIDED if UNDECIDED in found else ExitCode.OK)


def markdown(verdicts: list[Verdict], source: str) -> str:
    """The invariants' table, then one line per broken invariant naming the two cells and the ratio."""
    broken = [v for v in verdicts if v.verdict == BROKEN]
    checked = sum(v.verdict not in (NOT_CHECKED, UNJUDGED) for v in verdicts)
    undecided = sum(v.verdict == UNDECIDED for v in verdicts)
    unjudged = [v for v in verdicts if v.verdict == UNJUDGED]
    title = (f"FAIL: {len(broken)} broken" if broken else f"FAIL: could not judge {len(unjudged)}" if unjudged
             else f"UNDECIDED: {undecided} over with too few repetitions" if undecided
             else f"pass ({checked} of {len(verdicts)} checked)")
    lines = [f"## ttsload invariants: {title}", "",
             f"ratios of cell medians inside `{source}`; over its bound, an invariant breaks when one-sided "
             "Mann–Whitney says left > bound x right over the repetitions (p <= 0.05)", "",
             "| invariant | metric | left / right | ratio | bound | p | verdict |", "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        ratio = f"{v.ratio:.3f}" if v.ratio is not None else "-"
        p = f"{v.p_value:.3f}" if v.p_value is not None else "-"
        verdict = f"**{v.verdict}**" if v.verdict == BROKEN else v.verdict + (f" ({v.note})" if v.note else "")
        verdict = f"**{verdict}**" if v.verdict == UNJUDGED else verdict
        lines.append(f"| {v.name} | {v.metric} | {v.left} / {v.right} | {ratio} | <= {v.max_ratio:g} | {p} "
                     f"| {verdict} |")
    lines += [""] if broken or unjudged else []
    lines += [f"COULD NOT JUDGE {v.name}: {v.note}" for v in unjudged]
    lines += [f"BROKEN {v.name}: {v.left} / {v.right} {v.metric} median ratio {v.ratio:.3f} > {v.max_ratio:g} "
              f"(p={v.p_value:.3f})" for v in broken]
    lines += [f"over its bound on noise only: {v.name}: {v.left} / {v.right} {v.metric} median ratio "
              f"{v.ratio:.3f} > {v.max_ratio:g}, p={v.p_value:.3f} over {v.note}" for v in verdicts
              if v.verdict == OVER_NOISE]
    lines += [f"UNDECIDED {v.name}: median ratio {v.ratio:.3f} > {v.max_ratio:g} with {v.note}; "
              f"at least {stats.MIN_REPETITIONS} are needed to tell" for v in verdicts if v.verdict == UNDECIDED]
    return "\n".join(lines) + "\n"


def to_json(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]
