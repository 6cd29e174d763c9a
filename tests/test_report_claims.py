"""The published-worker comparison and the across-families table, computed from a results file written
the way the runner writes one (so the arithmetic is checked against numbers set here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ttsload.bench.cells import CellKey
from ttsload.reports.claims_worker import worker_comparison
from ttsload.reports.load import load_run
from ttsload.reports.tables import family_table

MB = 2**20
VARIANT = "http@n1-no-preload"


def _write(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.jsonl", "w") as handle:
        for record in records:
            handle.write(json.dumps({"schema": 1, **record}) + "\n")


def _http_cell(strategy: str, repeat: int, p50: float, pss_first: float, pss_last: float) -> list[dict]:
    cell = CellKey(strategy, "kokoro", VARIANT, repeat).id
    row = {"type": "cell", "run_id": "r", "strategy": strategy, "model": "kokoro", "family": "kokoro",
           "scenario": VARIANT, "repeat": repeat, "status": "ok", "reason": "", "failed_requests": 1 if repeat else 0}
    phases = [{"type": "phase", "run_id": "r", "cell": cell, "phase": "closed-c1", "latency_p50_s": p50, "ok": 6,
               "failed": 0}, {"type": "phase", "run_id": "r", "cell": cell, "phase": "closed-c4",
                              "latency_p50_s": 99.0, "ok": 6, "failed": 0}]
    samples = [{"type": "sample", "run_id": "r", "cell": cell, "t_rel": float(i), "after_request": i,
                "total": {"pss": int(pss * MB), "uss": int(pss * MB), "rss": int(pss * MB)}, "processes": []}
               for i, pss in enumerate([pss_first, (pss_first + pss_last) / 2, pss_last])]
    return [row, *phases, *samples]


def test_worker_comparison_from_http_cells(tmp_path: Path) -> None:
    records = [{"type": "run", "run_id": "r", "environment": {}, "options": {}}]
    for repeat, (naive_p50, worker_p50) in enumerate([(4.0, 2.0), (5.0, 2.0), (6.0, 3.0)]):
        records += _http_cell("naive", repeat, naive_p50, 1000, 1300 + 100 * repeat)
        records += _http_cell("subprocess-worker", repeat, worker_p50, 900, 905)
    _write(tmp_path / "run", records)
    found = worker_comparison(load_run(tmp_path / "run"))
    assert found is not None
    [row] = found["table"].to_dict("records")
    assert row["naive p50 (s)"] == "5.00" and row["subprocess-worker p50 (s)"] == "2.00"  # medians of the first phase
    assert row["latency change"] == "-60 %"
    assert row["naive memory drift (MiB)"] == "+400" and row["subprocess-worker memory drift (MiB)"] == "+5"
    assert row["failed requests"] == 4
    assert "40-50%" in found["notes"][0]


def test_no_comparison_without_both_sides(tmp_path: Path) -> None:
    records = [{"type": "run", "run_id": "r", "environment": {}, "options": {}}]
    records += _http_cell("naive", 0, 4.0, 1000, 1100)
    _write(tmp_path / "run", records)
    assert worker_comparison(load_run(tmp_path / "run")) is None


@pytest.mark.parametrize("families", [["coqui", "kokoro", "onnx"]])
def test_family_table_has_one_row_per_model_and_strategy(tmp_path: Path, families: list[str]) -> None:
    records = [{"type": "run", "run_id": "r", "environment": {}, "options": {}}]
    for family in families:
        for repeat in range(3):
            records.append({"type": "cell", "run_id": "r", "strategy": "singleton", "model": f"m-{family}",
                            "family": family, "scenario": "single", "repeat": repeat, "status": "ok", "reason": "",
                            "params": 10.0, "file_mb": 40.0, "cold_start_s": 2.0 + repeat, "pss_mb": 500.0,
                            "latency_p50_s": 1.0, "rtf": 0.5})
    _write(tmp_path / "run", records)
    table = family_table(load_run(tmp_path / "run"))
    assert list(table["family"]) == sorted(families)
    assert set(table["cold start (s)"]) == {"3.00 [2.00–4.00]"}


def test_main_table_is_split_per_family(tmp_path: Path) -> None:
    from ttsload.reports import tables

    records = [{"type": "run", "run_id": "r", "environment": {}, "options": {}}]
    for family in ("kokoro", "onnx"):
        for repeat in range(2):
            records.append({"type": "cell", "run_id": "r", "strategy": "singleton", "model": f"m-{family}",
                            "family": family, "scenario": "single", "repeat": repeat, "status": "ok", "reason": "",
                            "cold_start_s": 1.0, "pss_mb": 100.0})
    _write(tmp_path / "run", records)
    data = load_run(tmp_path / "run")
    sections = tables.by_family(tables.main_table(tables.intervals(data), data), data)
    assert [family for family, _ in sections] == ["kokoro", "onnx"]
    assert [list(part["model"]) for _, part in sections] == [["m-kokoro"], ["m-onnx"]]
