"""Read a results folder (results.jsonl alone) into pandas frames the tables and plots share.

Works on a run that is still going or was killed: torn and malformed lines are left out (and
counted) by `bench.results.load_records`, a value that is not a finite number is shown as missing,
cells that were planned but have no cell record yet are listed as
"not finished", and failed cells keep their reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd

from ttsload.bench.analysis.metrics import COLUMNS, NUMERIC, PHASES
from ttsload.bench.analysis.serving import ServingData
from ttsload.bench.cells import SINGLE, CellKey
from ttsload.bench.errors import UsageError
from ttsload.bench.results import RESULTS, load_records

MB = 1024 * 1024
CELL_KEYS = ["model", "scenario", "strategy"]
PHASE_COLUMNS = [metric.column for metric in PHASES]


@dataclass
class RunData:
    """Everything a report shows, as frames; empty frames (with their columns) when a kind is absent."""

    folder: Path
    runs: list[dict[str, Any]]
    cells: pd.DataFrame  # one row per finished cell: the summary.csv columns (+ any a scenario adds)
    unfinished: pd.DataFrame  # planned cells with no cell record: strategy, model, scenario, repeat, reason
    samples: pd.DataFrame  # one row per memory reading of a cell's tree (MiB)
    processes: pd.DataFrame  # one row per process per reading: pid, pss_mb, uss_mb, rss_mb
    events: pd.DataFrame  # cell, event, t_rel, pid, index
    requests: pd.DataFrame  # cell, index, chars, latency_s, audio_s
    quality: pd.DataFrame  # records of type "quality", if the run wrote any
    strategies: list[str] = field(default_factory=list)  # in the run's order: fixes each one's colour
    phases: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per load phase of a scenario cell
    serving: ServingData = field(default_factory=ServingData)  # `ttsload client` records, if any

    @property
    def run(self) -> dict[str, Any]:
        """The latest run record (a resumed folder may hold several)."""
        return self.runs[-1] if self.runs else {}

    @property
    def ok(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.cells[self.cells["status"] != "ok"]

    @cached_property
    def machine_classes(self) -> list[str]:
        """The machine classes the cells were measured on, in order of appearance."""
        return [str(c) for c in self.cells["machine_class"].dropna().unique()] if len(self.cells) else []

    @property
    def keys(self) -> list[str]:
        """What one row of a table stands for: model x scenario x strategy, and the machine class when the
        results hold several (timings of two classes are never pooled)."""
        return [*CELL_KEYS, "machine_class"] if len(self.machine_classes) > 1 else CELL_KEYS

    def only_class(self, machine_class: str) -> RunData:
        """The records of one machine class: for plots and comparisons that draw one machine's timings."""
        runs = set(self.cells.loc[self.cells["machine_class"] == machine_class, "run_id"])

        def keep(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["run_id"].isin(runs)] if "run_id" in frame else frame

        return replace(self, cells=keep(self.cells), samples=keep(self.samples), processes=keep(self.processes),
                       events=keep(self.events), requests=keep(self.requests), quality=keep(self.quality),
                       phases=keep(self.phases), runs=[r for r in self.runs if r.get("run_id") in runs])

    def has_column(self, column: str) -> bool:
        return column in self.cells and self.cells[column].notna().any()


def load_run(folder: Path) -> RunData:
    if not (folder / RESULTS).is_file():
        raise UsageError(f"no {RESULTS} in {folder}: not a ttsload results folder")
    records = load_records(folder)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_type.setdefault(record.get("type", ""), []).append(record)
    runs = by_type.get("run", [])
    cells = _cells(by_type.get("cell", []), runs)
    samples, processes = _samples(by_type.get("sample", []))
    events = _frame(by_type.get("event", []), ["cell", "event", "t_rel", "pid", "index"])
    requests = _frame(by_type.get("request", []), ["cell", "index", "chars", "latency_s", "audio_s", "pid"])
    quality = _frame(by_type.get("quality", []), ["model", "strategy", "reference", "requests", "snr_db_median",
                                                  "snr_db_min", "length_ratio_median", "identical"])
    strategies = list(dict.fromkeys([*_planned_strategies(runs), *cells["strategy"].tolist()]))
    phases = _frame(by_type.get("phase", []), ["cell", "phase", "count", "concurrency", "rate", "ok", "failed",
                                               "latency_p50_s", "latency_p99_s", "throughput_rps"])
    return RunData(folder, runs, cells, _unfinished(runs, cells, events), samples, processes, events, requests,
                   quality, strategies, phases, ServingData.from_records(by_type))


def _frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records)
    for column in columns:
        if column not in frame:
            frame[column] = pd.Series(dtype=float)
    return frame


def _cells(records: list[dict[str, Any]], runs: list[dict[str, Any]]) -> pd.DataFrame:
    frame = _frame(records, [*COLUMNS, "machine", "machine_class"])
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    # rows of runs made before cell rows carried their machine: from their run record
    environments = {r.get("run_id"): r.get("environment", {}) for r in runs}
    for column, fallback in (("machine", "hostname"), ("machine_class", "machine_class")):
        known = {run_id: env.get(column) or env.get(fallback) or "unknown" for run_id, env in environments.items()}
        frame[column] = frame[column].fillna(frame["run_id"].map(known)).fillna("unknown")
    frame["cell"] = [CellKey(*parts).id for parts in zip(frame["strategy"].astype(str), frame["model"].astype(str),
                                                         frame["scenario"].astype(str), frame["repeat"].astype(int),
                                                         strict=True)] if len(frame) else pd.Series(dtype=str)
    frame["reason"] = frame["reason"].fillna("")
    return frame.drop(columns=[c for c in ("type", "schema") if c in frame])


def _samples(records: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, per_process = [], []
    for record in records:
        total = record.get("total", {})
        base = {"cell": record["cell"], "run_id": record.get("run_id"), "t_rel": record["t_rel"],
                "steady": bool(record.get("steady")),
                "after_request": record.get("after_request")}
        rows.append({**base, "n": record.get("n"), **_mib(total, total)})
        for process in record.get("processes", []):
            if isinstance(process, dict):
                per_process.append({**base, "pid": process.get("pid"), **_mib(process, ("rss", "pss", "uss"))})
    columns = ["cell", "t_rel", "steady", "after_request", "n", "rss_mb", "pss_mb", "uss_mb"]
    return _frame(rows, columns), _frame(per_process, ["cell", "t_rel", "steady", "pid", "pss_mb", "uss_mb"])


def _mib(reading: dict[str, Any], keys: Iterable[str]) -> dict[str, float]:
    """Byte counts as MiB columns; a value that is not a number (missing, NaN read as None) is left out."""
    return {f"{k}_mb": reading[k] / MB for k in keys if _is_number(reading.get(k))}


def _is_number(value: object) -> bool:  # a value read from a results file: anything
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _planned_strategies(runs: list[dict[str, Any]]) -> list[str]:
    return [name for run in runs for name in (run.get("options", {}).get("strategies") or {})]


def _planned_cells(options: dict[str, Any]) -> list[str]:
    """Cell ids a run planned: listed by runs that know scenarios, else strategies x models x repeats."""
    if isinstance(options.get("planned_cells"), list):
        return [c for c in options["planned_cells"] if _is_cell_id(c)]
    models = [m.get("name") for m in options.get("models") or [] if isinstance(m, dict)]
    repeat = options.get("repeat") if isinstance(options.get("repeat"), int) else 0
    strategies = options.get("strategies") if isinstance(options.get("strategies"), dict) else {}
    return [CellKey(strategy, str(model), SINGLE, index).id for index in range(min(repeat, 10_000))
            for model, strategy in product(models, strategies)]


def _is_cell_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        CellKey.parse(value)
    except (ValueError, AttributeError):
        return False
    return True


def _unfinished(runs: list[dict[str, Any]], cells: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Cells the run planned that have no cell record yet."""
    done = set(cells["cell"])
    started = set(events["cell"])
    rows = []
    for run in runs:
        for cell in _planned_cells(run.get("options", {})):
            if cell not in done:
                strategy, model, scenario, repeat = CellKey.parse(cell)
                reason = ("interrupted: started, no result written" if cell in started
                          else "not run (run interrupted or still going)")
                rows.append({"strategy": strategy, "model": model, "scenario": scenario, "repeat": int(repeat),
                             "cell": cell, "reason": reason})
    frame = _frame(rows, ["strategy", "model", "scenario", "repeat", "cell", "reason"])
    return frame.drop_duplicates("cell")
