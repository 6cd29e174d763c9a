"""In-run invariants: ratios between two cells of the same run, which hold on any machine.

An absolute comparison needs a baseline of the same machine class; a ratio inside one run does not
(mmap's weights phase is a fraction of eager's on a Xeon and on an EPYC alike). Each invariant of
`baselines/invariants.toml` names two cells, a metric, a bound on median(left) / median(right) and
the reason for that bound. One whose cells (or metric) are absent from the run is reported as not
checked, never as failed: a quick run need not hold every scenario.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tomllib

from ttsload.bench.analysis import stats
from ttsload.bench.cells import group_label
from ttsload.bench.errors import UsageError
from ttsload.bench.regression.resultset import ResultSet

OK, BROKEN, NOT_CHECKED = "ok", "BROKEN", "not checked"


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
    verdict: str  # ok | BROKEN | not checked
    note: str = ""


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
        if not isinstance(entry["max_ratio"], (int, float)) or entry["max_ratio"] <= 0:
            raise UsageError(f"{where}: max_ratio must be a positive number, got {entry['max_ratio']!r}")
        found.append(Invariant(str(entry["name"]), str(entry["metric"]), str(entry["left"]), str(entry["right"]),
                               float(entry["max_ratio"]), str(entry["reason"])))
    if not found:
        raise UsageError(f"{path} holds no [[invariant]] entries")
    return found


def _median(result: ResultSet, cell: str, metric: str) -> float | None:
    by_label = {group_label(key): values for key, values in result.cells.items()}
    values = by_label.get(cell, {}).get(metric) or []
    return stats.statistic(values, "median") if values else None


def check(invariants: list[Invariant], result: ResultSet) -> list[Verdict]:
    verdicts = []
    for inv in invariants:
        left, right = _median(result, inv.left, inv.metric), _median(result, inv.right, inv.metric)
        base = (inv.name, inv.metric, inv.left, inv.right, inv.max_ratio)
        if left is None or right is None:
            absent = [c for c, v in ((inv.left, left), (inv.right, right)) if v is None]
            note = f"no {inv.metric} for {' and '.join(absent)} in this run"
            verdicts.append(Verdict(*base, None, NOT_CHECKED, note))
        elif right <= 0:
            verdicts.append(Verdict(*base, None, NOT_CHECKED, f"{inv.right} {inv.metric} is {right:g}: no ratio"))
        else:
            ratio = left / right
            verdicts.append(Verdict(*base, ratio, OK if ratio <= inv.max_ratio else BROKEN))
    return verdicts


def exit_code(verdicts: list[Verdict]) -> int:
    return 1 if any(v.verdict == BROKEN for v in verdicts) else 0


def markdown(verdicts: list[Verdict], source: str) -> str:
    """The invariants' table, then one line per broken invariant naming the two cells and the ratio."""
    broken = [v for v in verdicts if v.verdict == BROKEN]
    checked = sum(v.verdict != NOT_CHECKED for v in verdicts)
    title = f"FAIL: {len(broken)} broken" if broken else f"pass ({checked} of {len(verdicts)} checked)"
    lines = [f"## ttsload invariants: {title}", "", f"ratios of cell medians inside `{source}`", "",
             "| invariant | metric | left / right | ratio | bound | verdict |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        ratio = f"{v.ratio:.3f}" if v.ratio is not None else "-"
        verdict = f"**{v.verdict}**" if v.verdict == BROKEN else v.verdict + (f" ({v.note})" if v.note else "")
        lines.append(f"| {v.name} | {v.metric} | {v.left} / {v.right} | {ratio} | <= {v.max_ratio:g} | {verdict} |")
    lines += [""] if broken else []
    lines += [f"BROKEN {v.name}: {v.left} / {v.right} {v.metric} median ratio {v.ratio:.3f} > {v.max_ratio:g}"
              for v in broken]
    return "\n".join(lines) + "\n"


def to_json(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]
