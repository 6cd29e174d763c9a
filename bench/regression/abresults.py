"""One side of an A/B run as a result set: its one-repetition cell folders pooled, for the in-run invariants
and for the history store (where the line is marked as an A/B run, and the history plot shows it so)."""

from __future__ import annotations

from pathlib import Path

from ttsload.bench.errors import UsageError
from ttsload.bench.regression import history
from ttsload.bench.regression.resultset import ResultSet
from ttsload.bench.results import RESULTS


def pooled(folder: Path) -> ResultSet:
    """Every cell folder under `folder` (out/A or out/B) as one result set: values, repetitions, failures summed."""
    parts = [ResultSet.from_folder(path.parent) for path in sorted(folder.glob(f"*/{RESULTS}"))]
    if not parts:
        raise UsageError(f"no cell folders with {RESULTS} under {folder}")
    result = ResultSet(str(folder), parts[0].run_id, parts[0].environment, parts[0].options)
    for part in parts:
        for key, metrics in part.cells.items():
            into = result.cells.setdefault(key, {})
            for metric, values in metrics.items():
                into.setdefault(metric, []).extend(values)
            result.repetitions[key] = result.repetitions.get(key, 0) + part.repetitions.get(key, 0)
            if part.failed.get(key):
                result.failed[key] = result.failed.get(key, 0) + part.failed[key]
    return result


def append_history(folder: Path, sides: dict[str, str], path: Path | None = None, commit: str | None = None) -> Path:
    """The side's pooled cells as one history line, with `ab` naming both sides; returns the store's path.

    `commit`: the side's git commit when it is a ref, whose exported tree has no .git for the run to read."""
    return history.append_result(pooled(folder), path, ab=sides, **({"git_sha": commit} if commit else {}))
