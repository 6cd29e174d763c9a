"""The result store: append-only JSON lines (schema-versioned) plus summary.csv, flushed per cell.

A run folder can be rebuilt into tables from `results.jsonl` alone; summary.csv is rewritten
atomically (bench.atomic.replacing) after every cell from all cell records in the file, so an interrupted
run keeps everything that finished. One writer at a time: the store holds the folder's lock.

A results folder is untrusted input (it may come from another machine, or be crafted): every reader
(`report`, `merge`, `gate`, `--resume`) goes through `read_lines`, which never follows a symlink, leaves out
each line that is torn, not UTF-8, not a JSON object, or a known record lacking what readers need, counts
those lines and says so in one warning, and reads non-finite numbers and integers beyond 64 bits as missing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttsload.bench.analysis.metrics import COLUMNS
from ttsload.bench.atomic import FolderLock, replacing
from ttsload.bench.errors import UsageError

SCHEMA_VERSION = 1
RESULTS = "results.jsonl"
SUMMARY = "summary.csv"
# What readers index without checking, per record type: a record lacking one is a malformed line.
_TEXT, _NUMBER, _MAPPING = str, (int, float), dict
REQUIRED: dict[str, dict[str, Any]] = {
    "run": {"run_id": _TEXT},
    "cell": {"strategy": _TEXT, "model": _TEXT, "scenario": _TEXT, "repeat": int, "status": _TEXT},
    "sample": {"cell": _TEXT, "t_rel": _NUMBER},
    "event": {"cell": _TEXT, "event": _TEXT},
    "request": {"cell": _TEXT},
    "phase": {"cell": _TEXT, "phase": _TEXT},
}
OPTIONAL: dict[str, dict[str, Any]] = {"run": {"environment": _MAPPING, "options": _MAPPING},
                                       "sample": {"total": _MAPPING, "processes": list}}
_warned: set[tuple[str, int]] = set()
_SIGNED = re.compile(r"[+-](?:\d[\d.,]*(?:[eE][+-]?\d+)?\s*%?)?")


def slug(machine: str) -> str:
    """A machine name fit for a run id (and the log file names made from it)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", machine)[:40] or "machine"


def new_run_id(machine: str, shard: str | None = None) -> str:
    """`<UTC start>-<machine>-<8 random hex>[-s<I>of<N>]`: ids sort by start time, and two runs that start in
    the same second never share one, on two machines or on one (two pods both named by the node, two CI
    jobs with one `--machine`): merge keys records by run id, so a shared one would mix two runs' records."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{slug(machine)}-{secrets.token_hex(4)}" + (f"-s{shard}".replace("/", "of") if shard else "")


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
        with os.fdopen(os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644),
                       "a+b") as handle:
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
            writer.writerows([{k: csv_cell(v) for k, v in row.items()} for row in rows])
        return target


def write_new(path: Path, data: bytes) -> None:
    """Write a file without following a symlink at its name (a crafted folder must not redirect a write)."""
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link: refusing to write through it")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), "wb") as handle:
        handle.write(data)


def csv_cell(value: object) -> object:  # a row field of any type; only text is changed
    """A value as a CSV cell a spreadsheet will not run: text that starts a formula gets a leading quote
    (a signed number written as text, `-1.5` or `+12 %`, or a lone `-` for missing, is left as it is)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _SIGNED.fullmatch(value):
        return "'" + value
    return value


@dataclass
class Lines:
    """The readable records of a results.jsonl, each with its text as written, and the lines left out."""

    path: Path
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)  # 1-based line numbers

    def warning(self) -> str:
        shown = ", ".join(map(str, self.malformed[:5])) + (", ..." if len(self.malformed) > 5 else "")
        return (f"{self.path}: left out {len(self.malformed)} malformed line(s) (line {shown}): torn, not UTF-8, "
                "not a JSON object, or a record lacking a field")


def read_lines(out: Path) -> Lines:
    """Every line of OUT/results.jsonl that a reader can use; the rest counted (see the module's docstring)."""
    path = out / RESULTS
    lines = Lines(path)
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link: not followed (a results folder holds its own results.jsonl)")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return lines
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UsageError(f"{path} is not a regular file")
        data = handle.read()
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        record = _parse(raw)
        if record is None:
            lines.malformed.append(number)
        else:
            lines.records.append((raw.decode("utf-8").strip(), record))
    if lines.malformed and (key := (str(path), len(lines.malformed))) not in _warned:
        _warned.add(key)  # once per process: the store re-reads its file after every cell
        print(f"ttsload: warning: {lines.warning()}", file=sys.stderr)
    return lines


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw.decode("utf-8"), parse_constant=lambda _: None, parse_float=_finite,
                            parse_int=_int64)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    if not isinstance(record, dict):
        return None
    kind = record.get("type")
    for name, wanted in REQUIRED.get(kind, {}).items() if isinstance(kind, str) else ():
        if not isinstance(record.get(name), wanted) or isinstance(record.get(name), bool):
            return None
    for name, wanted in OPTIONAL.get(kind, {}).items() if isinstance(kind, str) else ():
        if name in record and not isinstance(record[name], wanted):
            return None
    return None if kind == "cell" and record["repeat"] < 0 else record


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _int64(text: str) -> int | None:
    """An integer beyond 64 bits is no measurement: missing (pandas and the CSV writers cannot hold it)."""
    if len(text.lstrip("-")) > 19:
        return None
    value = int(text)
    return value if -2**63 <= value < 2**63 else None


def load_records(out: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Every readable record of a results folder (optionally of one type), through `read_lines`."""
    return [r for _, r in read_lines(out).records if kind is None or r.get("type") == kind]


def load_cell_rows(out: Path) -> list[dict[str, Any]]:
    return load_records(out, "cell")
