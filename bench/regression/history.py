"""History: every run appended to a JSON-lines store keyed by git sha and date; plots across commits.

Each line is the run's compact result set (the same form as a baseline) plus the date, so a step
between two commits is judged exactly as the gate judges a regression: beyond a threshold and
significant across repetitions. The default store lives in $TTSLOAD_HOME, so it survives clones
and worktrees the way a history of commits should.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttsload.bench.analysis import stats
from ttsload.bench.atomic import append_line
from ttsload.bench.cells import group_label
from ttsload.bench.errors import UsageError
from ttsload.bench.regression import gate
from ttsload.bench.regression.resultset import ResultSet

HISTORY = "history.jsonl"


def default_path() -> Path:
    from ttsload.bench.models import home

    return home() / HISTORY


def append(folder: Path, path: Path | None = None) -> Path:
    """Append one run (a results folder) to the store; returns the store's path."""
    return append_result(ResultSet.from_folder(folder), path)


def append_result(result: ResultSet, path: Path | None = None, **extra: Any) -> Path:
    """Append one result set; `extra` goes into its line (an A/B run's `ab`: which sides it measured)."""
    path = path or default_path()
    line = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git_sha": result.git_sha, **extra, **result.to_json()}
    path.parent.mkdir(parents=True, exist_ok=True)
    append_line(path, json.dumps(line, separators=(",", ":")))  # locked, fsynced; a torn tail is cut first
    return path


@dataclass(frozen=True)
class Point:
    """One run of one cell: where it sits on the commit axis and what it measured."""

    date: str
    git_sha: str
    run_id: str
    values: list[float]
    ab: bool = False  # measured by an A/B run (`ttsload gate --ab`), as its head side

    @property
    def median(self) -> float:
        return stats.statistic(self.values, "median")


def read(path: Path) -> list[tuple[dict[str, Any], ResultSet]]:
    """(line header, result set) per run, oldest first; torn or foreign lines are named, not skipped."""
    if not path.is_file():
        raise UsageError(f"no history at {path}: `ttsload run` appends every run to it")
    entries = []
    content = path.read_text(encoding="utf-8")
    lines = content.splitlines()
    if lines and not content.endswith("\n"):
        lines.pop()  # a line still being written, or torn by a killed writer (the next append cuts it)
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number} is not valid JSON: {exc}") from None
        entries.append(({"date": data.get("date", ""), "git_sha": data.get("git_sha") or "unknown",
                         "ab": bool(data.get("ab"))},
                        ResultSet.from_json(data, f"{path}:{number}")))
    return sorted(entries, key=lambda entry: entry[0]["date"])


def series(entries: list[tuple[dict[str, Any], ResultSet]], metric: str,
           model: str | None = None) -> dict[str, list[Point]]:
    """One series per cell and run options (runs with other options are another experiment)."""
    found: dict[str, list[Point]] = defaultdict(list)
    configs = {json.dumps(result.options, sort_keys=True) for _, result in entries}
    for header, result in entries:
        for key, metrics in result.cells.items():
            if (model and key[1] != model) or not metrics.get(metric):
                continue
            label = group_label(key)
            if len(configs) > 1:
                label += " " + ",".join(f"{k}={v}" for k, v in sorted(result.options.items()) if v is not None)
            found[label].append(Point(header["date"], header["git_sha"], result.run_id, metrics[metric],
                                      bool(header.get("ab"))))
    return dict(found)


def steps(points: list[Point], rule: gate.Rule) -> list[tuple[int, gate.Check]]:
    """Indices where a series moved: the gate's own judgement between consecutive runs."""
    marked = []
    for index in range(1, len(points)):
        check = gate.judge(rule, points[index - 1].values, points[index].values)
        if check.verdict in ("REGRESSION", "improved"):
            marked.append((index, check))
    return marked


def plot(found: dict[str, list[Point]], marks: dict[str, list[tuple[int, gate.Check]]], metric: str,
         out: Path) -> Path:
    """asv-style: x is the sequence of runs labelled by commit, one line per cell, steps marked."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # a `$` in a name is text, not mathtext
    import matplotlib.pyplot as plt

    order = sorted({(p.date, p.git_sha) for points in found.values() for p in points})
    position = {key: i for i, key in enumerate(order)}
    figure, axes = plt.subplots(figsize=(max(6.0, 0.6 * len(order) + 3), 4.5))
    for label, points in sorted(found.items()):
        xs = [position[(p.date, p.git_sha)] for p in points]
        medians = [p.median for p in points]
        spread = [[p.median - min(p.values) for p in points], [max(p.values) - p.median for p in points]]
        axes.errorbar(xs, medians, yerr=spread, marker="o", capsize=3, label=label)
        ab = [(x, m) for x, m, p in zip(xs, medians, points, strict=True) if p.ab]
        if ab:  # an A/B run's head side: a square around its point
            ab_x, ab_median = zip(*ab, strict=True)
            axes.scatter(ab_x, ab_median, marker="s", s=120, facecolors="none", edgecolors="black",
                         zorder=4, label=f"{label} (A/B run)")
        for index, check in marks.get(label, []):
            colour = "red" if check.verdict == "REGRESSION" else "green"
            axes.scatter([xs[index]], [medians[index]], s=180, facecolors="none", edgecolors=colour, linewidths=2,
                         zorder=5)
            axes.annotate(gate.format_change(check),
                          (xs[index], medians[index]), textcoords="offset points", xytext=(6, 6), color=colour,
                          fontsize=8)
    axes.set_xticks(range(len(order)), [sha[:8] for _, sha in order], rotation=45, ha="right", fontsize=8)
    axes.set_xlabel("commit (runs in date order)")
    axes.set_ylabel(f"{metric} (median, bars: min-max over repetitions)")
    axes.set_title(f"ttsload history: {metric} (circled: significant steps; squared: A/B runs)")
    axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def show(metric: str, path: Path | None = None, model: str | None = None, threshold: str = "10%",
         out: Path | None = None) -> str:
    """Plot `metric` across commits and return a text listing of the series and their steps."""
    path = path or default_path()
    rule = gate.parse_spec(f"{metric}:median:+{threshold.lstrip('+')}")[0]
    found = series(read(path), metric, model)
    if not found:
        raise UsageError(f"metric '{metric}' has no values in {path}" + (f" for model '{model}'" if model else ""))
    marks = {label: steps(points, rule) for label, points in found.items()}
    target = plot(found, marks, metric, out or Path("reports") / "out" / f"history-{metric}.png")
    lines = []
    for label, points in sorted(found.items()):
        stepped = dict(marks[label])
        lines.append(f"{label}:")
        for index, p in enumerate(points):
            note = ""
            if index in stepped:
                check = stepped[index]
                note = f"  <- step: {check.verdict.lower()} {gate.format_change(check)} (p={check.p_value:.3f})"
            ab = "  (A/B run)" if p.ab else ""
            lines.append(f"  {p.date}  {p.git_sha[:12]:<12}  median {p.median:.4g}  n={len(p.values)}{ab}{note}")
    return "\n".join(lines) + f"\nplot: {target}\n"
