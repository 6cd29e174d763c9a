"""The result store: append-only JSON lines (schema-versioned) plus summary.csv, flushed per cell.

A run folder can be rebuilt into tables from `results.jsonl` alone; summary.csv is rewritten
atomically (bench.atomic.replacing) after every cell from all cell records in the file, so an interrupted
run keeps everything that finished. One writer at a time: the store holds the folder's lock.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ttsload.bench.analysis.metrics import COLUMNS
from ttsload.bench.atomic import FolderLock, replacing

SCHEMA_VERSION = 1
RESULTS = "results.jsonl"
SUMMARY = "summary.csv"


class ResultStore:
    """The writer of one results folder; it holds the folder's lock (bench.atomic.FolderLock) while it lives,
    so a second run on the same folder stops at once with one line instead of interleaving with the first."""

    def __init__(self, out: Path, flag: str = "--out"):
        self.out = out
        self.lock = FolderLock(out, flag)
        self.path = out / RESULTS

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append whole lines; after a torn last line (a run killed mid-write) start on a fresh line."""
        text = "".join(json.dumps({"schema": SCHEMA_VERSION, **r}, default=str) + "\n" for r in records)
        with open(self.path, "a+b") as handle:
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    text = "\n" + text
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def write_run(self, run_id: str, environment: dict[str, Any], options: dict[str, Any]) -> None:
        self.append([{"type": "run", "run_id": run_id, "environment": environment, "options": options}])

    def write_cell(self, records: list[dict[str, Any]], row: dict[str, Any]) -> None:
        self.append([*records, {"type": "cell", **row}])
        self.write_summary()

    def cell_rows(self) -> list[dict[str, Any]]:
        return load_cell_rows(self.out)

    def write_summary(self) -> Path:
        rows = self.cell_rows()
        target = self.out / SUMMARY
        extra = sorted({k for r in rows for k in r} - set(COLUMNS) - {"type", "schema"})
        with replacing(target, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS + extra, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        return target


def load_records(out: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every record of a results folder (optionally of one type); a torn last line is skipped."""
    records = []
    path = out / RESULTS
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a run killed mid-write leaves at most one partial line
        if kind is None or record.get("type") == kind:
            records.append(record)
    return records


def load_cell_rows(out: Path) -> list[dict[str, Any]]:
    return load_records(out, "cell")
