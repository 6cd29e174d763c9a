"""The physical limit (memcpy and cold-read bandwidth) each cell measures before its imports, and the weights
phase put against it: through the real `ttsload run` on the tiny model, and the probe's own bookkeeping.

No figure is compared with a wall-clock threshold: rates are only checked to exist, be positive and be
consistent with each other.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.analysis.summary import summarize
from ttsload.bench.cell import limits
from ttsload.bench.cells import Cell, CellOutcome, TreeReading
from ttsload.bench.harness import pagecache
from ttsload.strategies.base import ModelFiles

EAGER = ("singleton", "naive")  # loaders that read every byte of the checkpoint in their weights phase
MiB = 2**20


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def limit_events(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [r for r in records if r.get("event") == "limits"]


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict[str, Path]:
    """One warm run of the eager presets and one cold run of naive, on vits-tiny."""
    found = {}
    for cache, strategies in (("warm", ",".join(EAGER)), ("cold", "naive")):
        out = tmp_path_factory.mktemp("limits") / cache
        done = ttsload("run", "--strategy", strategies, "--model", "vits-tiny", "--requests", "2", "--repeat", "1",
                       "--cache", cache, "--out", str(out), "--no-history")
        assert done.returncode == 0, done.stderr[-3000:]
        found[cache] = out
    return found


@pytest.mark.integration
def test_every_cell_records_its_limit_and_the_weights_rate(runs):
    for cache, out in runs.items():
        for row in rows(out):
            assert row["status"] == "ok" and row["cache"] == cache
            memcpy, weights = float(row["memcpy_gbps"]), float(row["weights_gbps"])
            pct = float(row["weights_pct_of_limit"])
            assert memcpy > 0 and weights > 0 and float(row["verify_gbps"]) > 0
            assert float(row["memcpy_mb"]) == int(os.environ["TTSLOAD_MEMCPY_MIB"])  # the size the runner asked for
            limit = float(row["read_gbps"]) if cache == "cold" else memcpy
            assert pct == pytest.approx(100 * weights / limit)
            assert pct > 0
            if cache == "warm":  # an eager load copies every byte at least once: it cannot beat one copy of them
                assert pct < 100, row
            # (cold: the sha256 check read the files off the device first, so no such bound holds for this phase)
            expected_rate = float(row["file_mb"]) * MiB / float(row["weights_s"]) / 1e9
            assert weights == pytest.approx(expected_rate, rel=1e-6)


@pytest.mark.integration
def test_the_cold_read_is_measured_only_in_cold_cells(runs):
    warm, cold = rows(runs["warm"]), rows(runs["cold"])
    assert all(r["read_gbps"] == "" and r["read_mb"] == "" for r in warm)
    assert all(float(r["read_gbps"]) > 0 and float(r["read_mb"]) == pagecache.SCRATCH_BYTES / MiB for r in cold)
    event = limit_events(runs["cold"])[0]
    assert event["read_bytes"] == pagecache.SCRATCH_BYTES and event["read_passes"] == limits.READ_PASSES
    assert event["read_same_device"] is True  # the scratch file lives in TTSLOAD_HOME, beside the fixture


@pytest.mark.integration
def test_the_probe_is_left_out_of_cold_start_and_peak_rss(runs):
    for out in runs.values():
        events = limit_events(out)
        by_cell = {r["strategy"]: r for r in rows(out)}
        assert len(events) == len(by_cell)
        for event in events:
            assert event["probe_s"] > 0 and event["peak_rss_reset"] is True and "limits_error" not in event
        for row in by_cell.values():
            assert float(row["limit_probe_s"]) > 0
            phases = sum(float(row[p]) for p in ("import_s", "verify_s", "construct_s", "weights_s", "first_audio_s"))
            assert phases <= float(row["cold_start_s"])


def test_no_probe_no_limit_columns_and_the_clock_unchanged(tmp_path):
    """A cell without a `limits` event (a profiling pass, an older run) keeps its plain cold start."""
    model = ModelFiles("m", tmp_path / "c.json", tmp_path / "m.pth", {})
    events = [{"event": "started", "t": 10.0}, {"event": "first_audio", "t": 13.0}]
    row = summarize(CellOutcome(Cell("singleton", model, 0), 9.0, events=list(events)))
    assert row["cold_start_s"] == pytest.approx(4.0)
    assert row["memcpy_gbps"] is None and row["weights_pct_of_limit"] is None
    probe = {"event": "limits", "t": 10.5, "probe_s": 0.5, "memcpy_gbps": 10.0, "peak_rss_reset": True}
    readings = [TreeReading(t, [], {"pss": mb * MiB, "rss": mb * MiB}) for t, mb in
                ((9.9, 20), (10.2, 600), (10.55, 590), (10.6, 100), (12.0, 300))]
    outcome = CellOutcome(Cell("singleton", model, 0), 9.0, events=[events[0], probe, events[1]], readings=readings)
    row = summarize(outcome)
    assert row["cold_start_s"] == pytest.approx(3.5) and row["memcpy_gbps"] == 10.0
    assert row["peak_pss_mb"] == 300  # the readings during the probe and the first one after it are left out


def test_probe_functions_on_small_sizes(tmp_path):
    copy = limits.memcpy_bandwidth(4 * MiB, passes=2)
    assert copy["memcpy_gbps"] > 0 and copy["memcpy_bytes"] == 4 * MiB
    scratch = pagecache.scratch_file(tmp_path, size=3 * MiB + 5)
    assert scratch.stat().st_size == 3 * MiB + 5
    assert pagecache.scratch_file(tmp_path, size=3 * MiB + 5) == scratch  # written once, then reused
    read = limits.read_bandwidth(scratch, passes=1, model_file=scratch)
    assert read["read_gbps"] > 0 and read["read_bytes"] == 3 * MiB + 5 and read["read_same_device"] is True
