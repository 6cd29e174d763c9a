"""The soak's leak analysis on the tiny model: a planted leak is found (at its planted rate), the clean
presets are not flagged, and allocator retention (memory malloc_trim gives back) is not called a leak."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import ttsload

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

LEAK_KB = 64  # planted per request: 62.5 MiB per 1000 requests
SOAK = """
summary = "test: short soak with a trim every 20 requests"
kind = "pool"
[workers]
counts = [1]
threads = 1
[texts]
distinct = 8
max_chars = 120
order = "random"
[leak]
warmup = 40
threshold_mb_per_1k = 5.0
[[phase]]
do = "requests"
count = 240
trim_every = 20
"""


@pytest.fixture(scope="module")
def soak(tiny, tmp_path_factory) -> dict[str, dict[str, str]]:
    folder = tmp_path_factory.mktemp("soak")
    (folder / "soak.toml").write_text(SOAK)
    out = folder / "out"
    done = ttsload("run", "--scenario", str(folder / "soak.toml"), "--strategy",
                   "singleton,resident+leak-eager,prefork+mmap", "--model", "vits-tiny", "--repeat", "1",
                   "--out", str(out), "--no-history",
                   env={"TTSLOAD_TEST_STRATEGIES": "1", "TTSLOAD_TEST_LEAK_KB": str(LEAK_KB)})
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "summary.csv", newline="") as handle:
        rows = {r["strategy"]: r for r in csv.DictReader(handle)}
    rows["_out"] = {"path": str(out)}
    return rows


def test_planted_leak_is_flagged_at_its_rate(soak):
    row = soak["resident+leak-eager"]
    assert row["status"] == "ok", row["reason"]
    assert row["leak_flagged"] == "True"
    planted = LEAK_KB * 1000 / 1024
    assert 0.5 * planted < float(row["leak_mb_per_1k"]) < 1.5 * planted, row["leak_mb_per_1k"]
    assert float(row["leak_ci_low"]) <= float(row["leak_mb_per_1k"]) <= float(row["leak_ci_high"])


@pytest.mark.parametrize("strategy", ["singleton", "prefork+mmap"])
def test_clean_strategies_are_not_flagged(soak, strategy):
    row = soak[strategy]
    assert row["status"] == "ok", row["reason"]
    assert row["leak_flagged"] == "False", (row["leak_mb_per_1k"], row["leak_ci_low"], row["leak_ci_high"])


def test_retention_is_told_apart_from_leak(soak):
    """Between trims memory climbs far faster than any leak, and each trim gives it back."""
    row = soak["singleton"]
    assert row["trims"] == "12"
    assert float(row["trim_returned_mb"]) > 0
    assert float(row["growth_mb_per_1k"]) > float(row["leak_ci_high"])


def test_soak_keeps_memory_after_every_request(soak):
    out = Path(soak["_out"]["path"])
    samples = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    after = [s for s in samples
             if s["type"] == "sample" and "after_request" in s and s["cell"].startswith("singleton|")]
    assert sorted(s["after_request"] for s in after) == list(range(240))
    marks = [s for s in samples if s["type"] == "sample" and s.get("mark") == "after_trim"
             and s["cell"].startswith("singleton|")]
    assert [m["requests"] for m in marks] == list(range(20, 241, 20))
