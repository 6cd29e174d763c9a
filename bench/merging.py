"""`ttsload merge`: the results folders of one plan's shards (and machines) into one folder, losslessly.

Inputs must carry the same plan hash (bench/planid.py). Every record is kept as written; a record found in
more than one input (a merged folder merged again) is kept once, so merging is idempotent, and the output
is ordered by run id, never by the order of the inputs. A cell measured ok twice on one machine class (same
cell id, different records) is a duplicate: the merge refuses and names it. Cells of the plan that a machine
class has not measured ok are listed as missing; `ttsload run --resume OUT` measures them.

Lines are read by the result store's own reader (bench/results.py: read_lines), so a torn or malformed
line anywhere (a killed write followed by a `--resume`) is left out and counted exactly as every other command
does, and the merge names each such line; records other than cells are copied as written. Every other file
of the inputs (logs, profiles, stack dumps, audio) is copied by bench/artefacts.py, never two under one name.
Symlinks in the inputs are never followed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsload.bench import artefacts, atomic
from ttsload.bench.cells import CellKey, plain_or_safe
from ttsload.bench.errors import UsageError
from ttsload.bench.results import RESULTS, Lines, ResultStore, read_lines


@dataclass
class Merged:
    """What a merge wrote and found."""

    out: Path
    plan_hash: str
    records: int
    runs: int
    cells: int  # ok cell records
    classes: dict[str, str] = field(default_factory=dict)  # machine class -> machine names
    missing: dict[str, list[str]] = field(default_factory=dict)  # machine class -> cell ids not measured ok
    warnings: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "FILE line N" of each line that could not be read
    files: int = 0  # files other than the records in the merged folder
    split: list[str] = field(default_factory=list)  # paths whose inputs disagreed, kept once per version


def _read(folder: Path) -> Lines:
    """The lines of a results folder, readable ones as text and record (malformed ones counted by read_lines)."""
    if not (folder / RESULTS).is_file() or (folder / RESULTS).is_symlink():
        raise UsageError(f"no {RESULTS} in {folder} (or a symbolic link, not followed): not a ttsload results folder")
    return read_lines(folder)


def _stamp(row: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A cell row with its machine and machine class (from its run record when an older run left them out)."""
    environment = runs.get(row.get("run_id", ""), {}).get("environment", {})
    return {**row, "machine": row.get("machine") or environment.get("machine") or environment.get("hostname"),
            "machine_class": row.get("machine_class") or environment.get("machine_class") or "unknown"}


def merge(folders: list[Path], out: Path) -> Merged:
    """Check the inputs, write OUT/results.jsonl (and summary.csv, logs), and say what is missing."""
    if (out / RESULTS).is_file() and out.resolve() not in {f.resolve() for f in folders}:
        raise UsageError(f"--out {out} already holds results: name it as an input to merge into it, "
                         f"or choose a new folder")
    by_run: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    seen: set[str] = set()
    runs: dict[str, dict[str, Any]] = {}
    hashes: dict[str, list[str]] = defaultdict(list)
    left_out: list[str] = []
    tags: dict[Path, str] = {}  # an input's earliest run id names its files when inputs disagree on one
    for folder in folders:
        read = _read(folder)
        left_out += [f"{read.path} line {number}" for number in read.malformed]
        run_ids = sorted(str(r["run_id"]) for _, r in read.records if r.get("type") == "run")
        tags[folder] = plain_or_safe(run_ids[0] if run_ids else folder.name)
        for line, record in read.records:
            if line in seen:
                continue
            seen.add(line)
            run_id = str(record.get("run_id") or "")
            by_run[run_id].append((line, record))
            if record.get("type") == "run":
                runs[run_id] = record
                hashes[str(record.get("options", {}).get("plan_hash") or "none")].append(str(folder))
    if not runs:
        raise UsageError(f"no run record in {', '.join(map(str, folders))}: nothing to merge")
    if len(hashes) > 1 or "none" in hashes:
        found = "; ".join(f"{h} in {', '.join(sorted(set(where)))}" for h, where in sorted(hashes.items()))
        raise UsageError(f"inputs come from different plans (plan hashes: {found}); 'none' is a run made before "
                         f"plan hashes")
    lines, rows = _ordered(by_run, runs)
    _check_duplicates(rows)
    split = _write(out, lines, list(tags.items()))
    merged = _findings(out, next(iter(hashes)), len(lines), runs, rows)
    merged.left_out, merged.split = left_out, split
    merged.files = len(artefacts.files(out))
    return merged


def _ordered(by_run: dict[str, list[tuple[str, dict[str, Any]]]],
             runs: dict[str, dict[str, Any]]) -> tuple[list[str], list[dict]]:
    """Runs by run id (the inputs' order never shows); cell rows stamped with their machine."""
    lines, rows = [], []
    for run_id in sorted(by_run):
        for line, record in by_run[run_id]:
            if record.get("type") == "cell":
                row = _stamp(record, runs)
                rows.append(row)
                line = json.dumps(row, default=str)
            lines.append(line)
    return lines, rows


def _check_duplicates(rows: list[dict[str, Any]]) -> None:
    measured: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        if row.get("status") == "ok":
            measured[(CellKey.of_row(row).id, row["machine_class"])].append(f"{row.get('machine')} "
                                                                            f"run {row.get('run_id')}")
    twice = {key: where for key, where in measured.items() if len(where) > 1}
    if twice:
        (cell, machine_class), where = sorted(twice.items())[0]
        raise UsageError(f"duplicate: cell {cell} measured ok {len(where)} times on machine class {machine_class} "
                         f"({'; '.join(where)}){f' and {len(twice) - 1} more cells' if len(twice) > 1 else ''}; "
                         f"merge the shards of one run of the plan per machine class")


def _write(out: Path, lines: list[str], sources: list[tuple[Path, str]]) -> list[str]:
    """results.jsonl replaced atomically, summary.csv rebuilt, every other file of the inputs copied."""
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out)  # holds the folder's lock while it is rewritten
    split = artefacts.merge_files(sources, out)  # first: a link in OUT stops the merge before results change
    atomic.write_text(out / RESULTS, "".join(line + "\n" for line in lines))
    store.write_summary()
    return split


def _findings(out: Path, plan_hash: str, records: int, runs: dict[str, dict[str, Any]],
              rows: list[dict[str, Any]]) -> Merged:
    planned = list(dict.fromkeys(c for run in runs.values() for c in run.get("options", {}).get("planned_cells", [])))
    classes: dict[str, set[str]] = defaultdict(set)
    for run in runs.values():
        environment = run.get("environment", {})
        classes[environment.get("machine_class") or "unknown"].add(str(environment.get("machine")
                                                                       or environment.get("hostname")))
    done: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.get("status") == "ok":
            done[row["machine_class"]].add(CellKey.of_row(row).id)
    merged = Merged(out, plan_hash, records, len(runs), sum(len(ids) for ids in done.values()),
                    {c: ", ".join(sorted(names)) for c, names in sorted(classes.items())})
    for machine_class in sorted(classes):
        missing = [c for c in planned if c not in done[machine_class]]
        if missing:
            merged.missing[machine_class] = missing
    bases: dict[tuple[str, Any], set[str]] = defaultdict(set)
    for run in runs.values():
        options = run.get("options", {})
        if options.get("shard"):
            count = str(options["shard"]).partition("/")[2]
            bases[(run.get("environment", {}).get("machine_class"), count)].add(options.get("shard_basis"))
    for (machine_class, count), found in sorted(bases.items(), key=str):
        if len(found) > 1:
            merged.warnings.append(f"machine class {machine_class}: the {count} shards were balanced from different "
                                   f"history durations, so they may not partition the plan (see missing cells)")
    return merged


def describe(merged: Merged) -> str:
    """What the terminal shows after a merge: classes, counts, missing cells, and how to fill them."""
    lines = [f"merged {merged.runs} runs ({merged.records} records, {merged.files} other files) of plan "
             f"{merged.plan_hash} -> {merged.out}"]
    lines += [f"left out (torn or malformed): {where}" for where in merged.left_out]
    lines += [f"kept apart (inputs differ): {path}, as one NAME@<run id>-<sha256>.EXT per version"
              for path in merged.split[:20]] + ([f"  ... and {len(merged.split) - 20} more"]
                                                if len(merged.split) > 20 else [])
    for machine_class, names in merged.classes.items():
        missing = merged.missing.get(machine_class, [])
        state = f"{len(missing)} cells missing" if missing else "complete"
        lines.append(f"machine class {machine_class} ({names}): {state}")
        lines += [f"  missing: {cell}" for cell in missing[:20]]
        if len(missing) > 20:
            lines.append(f"  ... and {len(missing) - 20} more")
    lines += [f"warning: {w}" for w in merged.warnings]
    if merged.missing:
        lines.append(f"`ttsload run ... --resume {merged.out}` (the run's own options) measures the missing cells")
    return "\n".join(lines) + "\n"
