"""The A/B gate's campaign checks, in the benchmark tier: ten A-against-A runs with no false alarm, and the
plants judged in one A/B run each. Timing-bound and long (each run is 2 x 6+ fresh-process cells), so they
run only on a quiet machine and only when asked: `TTSLOAD_AB_CAMPAIGN=1 pytest tests/benchmarks/test_ab_campaign.py`
(`TTSLOAD_AB_MODEL`, default vits; `TTSLOAD_AB_PAIRS`, default 10). Never part of `nox -s tests` or CI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.errors import EXIT_FAILED, EXIT_OK

pytestmark = pytest.mark.skipif(os.environ.get("TTSLOAD_AB_CAMPAIGN") != "1",
                                reason="the A/B campaign runs only with TTSLOAD_AB_CAMPAIGN=1 on a quiet machine")
MODEL = os.environ.get("TTSLOAD_AB_MODEL", "vits")
PAIRS = os.environ.get("TTSLOAD_AB_PAIRS", "10")
PLANT = ("--b-env", "TTSLOAD_TEST_STRATEGIES=1")


def ab(out: Path, *extra: str) -> tuple[int, dict]:
    """One A/B run of this environment against itself on the eager path (`singleton`), with `extra` flags."""
    from ttsload.bench.models import build

    build(MODEL)
    done = ttsload("gate", "--ab", sys.executable, sys.executable, "--strategy", "singleton", "--model", MODEL,
                   "--pairs", PAIRS, "--out", str(out), "--no-history", "--json", str(out / "verdict.json"), *extra,
                   timeout=7200)
    return done.returncode, json.loads((out / "verdict.json").read_text())


def test_ten_a_against_a_runs_raise_no_false_alarm(ttsload_home, tmp_path):
    codes = [ab(tmp_path / f"aa{i}")[0] for i in range(10)]
    assert codes.count(EXIT_FAILED) == 0, codes


@pytest.mark.parametrize("pct", ["10"])
def test_a_cpu_plant_in_the_weights_phase_is_caught(ttsload_home, tmp_path, pct):
    code, verdict = ab(tmp_path / "cpu", *PLANT, "--b-env", "TTSLOAD_TEST_PLANT=cpu-eager",
                       "--b-env", f"TTSLOAD_TEST_CPU_PCT={pct}")
    assert code == EXIT_FAILED and any(c["metric"] == "weights_cpu_s" and c["verdict"] == "REGRESSION"
                                       for c in verdict["checks"])


def test_ten_percent_more_anonymous_memory_is_caught(ttsload_home, tmp_path):
    code, verdict = ab(tmp_path / "anon", *PLANT, "--b-env", "TTSLOAD_TEST_PLANT=anon-eager",
                       "--b-env", "TTSLOAD_TEST_ANON_PCT=10")
    assert code == EXIT_FAILED and any(c["metric"] == "pss_anon_trimmed_mb" and c["verdict"] == "REGRESSION"
                                       for c in verdict["checks"])


def test_a_faster_head_is_not_a_regression(ttsload_home, tmp_path):
    code, verdict = ab(tmp_path / "faster", "--a-env", "TTSLOAD_TEST_STRATEGIES=1", "--a-env",
                       "TTSLOAD_TEST_PLANT=cpu-eager", "--a-env", "TTSLOAD_TEST_CPU_PCT=20")
    assert code == EXIT_OK, verdict["checks"]
