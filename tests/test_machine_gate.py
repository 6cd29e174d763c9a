"""The gate's machine classes, in-run invariants and noise study, on small synthetic result sets.

No cell runs here, and the CLI runs in this process: a saved result set (.json) is what the gate reads on
either side, so the inputs are written by hand with the repetitions each case needs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import cli
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.harness.environment import fingerprint
from ttsload.bench.regression import machines, noise
from ttsload.bench.regression.resultset import ResultSet

ROOT = Path(__file__).resolve().parent.parent
INVARIANTS = ROOT / "baselines" / "invariants.toml"


def result_set(path: Path, cells: dict[str, dict[str, list[float]]], print_: dict | None = None) -> Path:
    """Write a saved result set: cells as 'strategy/model/scenario' -> metric -> repetitions."""
    entries = []
    for label, metrics in cells.items():
        strategy, model, scenario = label.split("/")
        n = max(len(v) for v in metrics.values())
        entries.append({"strategy": strategy, "model": model, "scenario": scenario, "repetitions": n, "failed": 0,
                        "metrics": {m: {"median": sorted(v)[len(v) // 2], "ci95": None, "values": v}
                                    for m, v in metrics.items()}})
    environment = {"fingerprint": print_ if print_ is not None else fingerprint(), "cpu": "x", "cores_logical": 2}
    path.write_text(json.dumps({"format": "ttsload-result-set", "version": 1, "source": str(path), "run_id": "r",
                                "environment": environment, "options": {}, "cells": entries, "saved": "2026"}))
    return path


CLEAN = {"singleton/vits-tiny/single": {"cold_start_s": [3.0, 3.1, 2.9, 3.05, 2.95],
                                         "weights_s": [0.20, 0.21, 0.19, 0.2, 0.205],
                                         "weights_cpu_s": [0.30, 0.31, 0.30, 0.29, 0.30],
                                         "cold_start_cpu_s": [4.0, 4.05, 3.95, 4.0, 4.02],
                                         "pss_anon_trimmed_mb": [230.0, 231.0, 230.5, 229.8, 230.2]}}


def slower(cells: dict, metric: str, factor: float) -> dict:
    return {cell: {m: [x * factor for x in v][:3] if m == metric else v[:3] for m, v in metrics.items()}
            for cell, metrics in cells.items()}


def test_the_baseline_of_the_same_machine_class_is_picked_and_gates(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    result_set(baselines / "here.json", CLEAN)
    current = result_set(tmp_path / "cur.json", slower(CLEAN, "pss_anon_trimmed_mb", 1.25))
    done = cli("gate", "--current", str(current), "--baselines", str(baselines))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"baseline for this machine class: {baselines / 'here.json'}" in done.stdout
    assert "REGRESSION singleton/vits-tiny/single: pss_anon_trimmed_mb median" in done.stdout


def test_one_different_cpu_flag_is_another_machine_class(tmp_path):
    here = fingerprint()
    other = {**here, "isa": sorted(set(here["isa"]) ^ {"amx_bf16"})}
    assert machines.differences(other, here) == [f"isa: {other['isa']!r} -> {here['isa']!r}"]
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    result_set(baselines / "amx.json", CLEAN, other)
    current = result_set(tmp_path / "cur.json", slower(CLEAN, "cold_start_s", 3.0))
    done = cli("gate", "--current", str(current), "--baselines", str(baselines), "--json", str(tmp_path / "v.json"))
    assert done.returncode == 0, done.stdout + done.stderr  # new hardware never fails CI...
    lines = [line for line in done.stdout.splitlines() if "no baseline for this machine class" in line]
    assert len(lines) == 1 and machines.describe(here) in lines[0]  # ...nor passes silently
    assert "run `nox -s baseline -- NAME` to make one" in lines[0] and "REGRESSION" not in done.stdout
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["verdict"] == "no baseline" and "amx.json: isa" in verdict["rejected_baselines"][0]


def test_no_baseline_at_all_still_checks_invariants(tmp_path):
    current = result_set(tmp_path / "cur.json", CLEAN)
    empty = tmp_path / "baselines"
    empty.mkdir()
    done = cli("gate", "--current", str(current), "--baselines", str(empty), "--invariants", str(INVARIANTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no baseline for this machine class" in done.stdout
    assert "pass (0 of" in done.stdout and "not checked (no weights_s for mmap/vits/single" in done.stdout


def test_a_baseline_from_before_fingerprints_never_matches():
    old = json.loads((ROOT / "baselines" / "xeon-2cpu.json").read_text())["environment"]
    derived = machines.fingerprint_of(old)
    assert derived["cpu"] == "Intel(R) Xeon(R) Processor" and derived["cores_logical"] == 2
    assert derived["memory_gb"] == 24 and derived["python"] == "3.11" and derived["torch"] == "2.13.0+cpu"
    assert derived["isa"] is None and machines.differences(derived, derived)  # unknown ISA: no match, even with itself


def test_a_broken_invariant_exits_1_naming_both_cells_and_the_ratio(tmp_path):
    cells = {"mmap/vits/single": {"weights_s": [0.15, 0.16, 0.14]},
             "naive/vits/single": {"weights_s": [0.20, 0.2, 0.21]},
             "subprocess-worker/vits/single": {"latency_p50_s": [0.5, 0.52, 0.51]},
             "singleton/vits/single": {"latency_p50_s": [0.5, 0.5, 0.49]}}
    current = result_set(tmp_path / "cur.json", cells)
    done = cli("gate", "--current", str(current), "--baselines", str(tmp_path / "none"),
                   "--invariants", str(INVARIANTS))
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("BROKEN mmap-weights-faster-than-eager: mmap/vits/single / naive/vits/single weights_s median ratio "
            "0.750 > 0.5") in done.stdout
    assert "| worker-latency-near-singleton | latency_p50_s |" in done.stdout and "BROKEN worker" not in done.stdout
    assert "not checked (no pss_trimmed_mb for prefork+mmap/vits/workers@n4" in done.stdout


def test_an_invariant_over_its_bound_on_noise_alone_is_said_but_does_not_fail(tmp_path):
    """Session 7's CI: three medians of a noisy host put mmap/naive weights at 0.547 on unchanged code."""
    cells = {"mmap/vits/single": {"weights_s": [0.10, 0.16, 0.11], "weights_cpu_s": [0.1, 0.1, 0.1]},  # one slow
             "naive/vits/single": {"weights_s": [0.29, 0.20, 0.21], "weights_cpu_s": [0.4, 0.4, 0.4]}}  # repetition
    current = result_set(tmp_path / "cur.json", cells)
    done = cli("gate", "--current", str(current), "--baselines", str(tmp_path / "none"),
                   "--invariants", str(INVARIANTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "over its bound on noise only: mmap-weights-faster-than-eager" in done.stdout
    assert "median ratio 0.524 > 0.5" in done.stdout and "BROKEN" not in done.stdout


def test_an_invariant_over_its_bound_with_too_few_repetitions_is_undecided(tmp_path):
    cells = {"mmap/vits/single": {"weights_s": [0.15, 0.16], "weights_cpu_s": [0.1, 0.1]},
             "naive/vits/single": {"weights_s": [0.20, 0.2], "weights_cpu_s": [0.4, 0.4]}}  # cells that ran hold both
    current = result_set(tmp_path / "cur.json", cells)
    done = cli("gate", "--current", str(current), "--baselines", str(tmp_path / "none"),
                   "--invariants", str(INVARIANTS))
    assert done.returncode == ExitCode.UNDECIDED, done.stdout + done.stderr
    assert "UNDECIDED mmap-weights-faster-than-eager: median ratio 0.775 > 0.5 with 2/2 repetitions" in done.stdout


def with_host(cells: dict, python_s: float) -> dict:
    """`cells` under four strategies, with a host calibration reading before every repetition (the Python
    part near `python_s`, jittering by 2 %)."""
    out = {}
    for label, metrics in cells.items():
        n = max(len(v) for v in metrics.values())
        jitter = [1.0, 1.02, 0.98, 1.01, 0.99][:n]
        for strategy in ("naive", "singleton", "mmap", "quantized"):
            out[label.replace("singleton/", f"{strategy}/")] = {
                **metrics, "host_python_s": [python_s * j for j in jitter], "host_memcopy_s": [0.025] * n,
                "host_matmul_s": [0.02 * j for j in jitter]}
    return out


def test_a_slower_host_skips_the_timing_checks_with_one_line_and_still_judges_memory(tmp_path):
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    result_set(baselines / "here.json", with_host(CLEAN, 0.025))
    slow_host = slower(slower(CLEAN, "cold_start_s", 2.0), "pss_anon_trimmed_mb", 1.25)
    current = result_set(tmp_path / "cur.json", with_host(slow_host, 0.034))  # the host runs Python 36 % slower
    done = cli("gate", "--current", str(current), "--baselines", str(baselines), "--json", str(tmp_path / "v.json"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert ("host speed against the baseline's (12 readings against 20): python +36 % (p=0.000), memcopy +0 % "
            "(p=1.000), matmul +0 %") in done.stdout and ": slower (a part counts when beyond ±10 %" in done.stdout
    assert "timing checks skipped (cold_start_cpu_s, cold_start_s, weights_cpu_s, weights_s)" in done.stdout
    assert "REGRESSION singleton/vits-tiny/single: pss_anon_trimmed_mb" in done.stdout
    assert "REGRESSION singleton/vits-tiny/single: cold_start_s" not in done.stdout
    assert {c["metric"] for c in json.loads((tmp_path / "v.json").read_text())["checks"]} == {"pss_anon_trimmed_mb"}
    # a change over too few readings is not a different host (a bimodal host separates 5 readings by chance)
    def naive_only(cells: dict) -> dict:
        return {label: metrics for label, metrics in cells.items() if label.startswith("naive/")}

    few = result_set(tmp_path / "few.json", naive_only(with_host(slow_host, 0.034)))
    few_base = result_set(tmp_path / "few-base.json", naive_only(with_host(CLEAN, 0.025)))
    done = cli("gate", "--current", str(few), "--baseline", str(few_base))
    assert "host speed: 3 readings against 5, too few to tell hosts apart" in done.stdout
    # a faster host is judged (a slower timing there is the code), with a warning that it can hide one
    fast = result_set(tmp_path / "fast.json", with_host(slow_host, 0.018))
    done = cli("gate", "--current", str(fast), "--baselines", str(baselines))
    assert done.returncode == 1 and ": faster (" in done.stdout and "could be hidden" in done.stdout
    assert "REGRESSION singleton/vits-tiny/single: cold_start_s" in done.stdout
    # the same host: the slower cold start is judged, and caught
    same = result_set(tmp_path / "same.json", with_host(slow_host, 0.0252))
    done = cli("gate", "--current", str(same), "--baselines", str(baselines))
    assert done.returncode == 1 and ": alike (" in done.stdout
    assert "REGRESSION singleton/vits-tiny/single: cold_start_s" in done.stdout


def test_the_host_calibration_reads_three_parts_and_pools_them_over_cells():
    from ttsload.bench.analysis import calibration
    from ttsload.bench.harness import hostspeed

    reading = hostspeed.measure(repeats=1)
    assert set(reading) == set(calibration.PARTS) and all(math.isfinite(v) and v > 0 for v in reading.values())
    pooled = calibration.of_cells([{"host_python_s": [1.0, 3.0]}, {"host_python_s": [2.0], "host_matmul_s": [0.5]}])
    assert pooled == {"python_s": [1.0, 3.0, 2.0], "matmul_s": [0.5]}


def test_a_malformed_invariants_file_is_one_line(tmp_path):
    bad = tmp_path / "inv.toml"
    bad.write_text('[[invariant]]\nname = "x"\nmetric = "weights_s"\nleft = "mmap"\nright = "a/b/c"\n'
                   'max_ratio = 0.5\nreason = "r"\n')
    done = cli("gate", "--current", str(result_set(tmp_path / "c.json", CLEAN)), "--invariants", str(bad),
                   "--baselines", str(tmp_path / "none"))  # not the repository's baselines/: one may match this machine
    assert done.returncode == 2 and "invariant[0]: left must be STRATEGY/MODEL/SCENARIO" in done.stderr


def test_the_noise_study_turns_repetitions_into_thresholds(tmp_path):
    steady = [100.0, 100.5, 99.5, 100.2, 99.8]
    noisy = [1.0, 1.4, 0.7, 1.2, 0.9]
    result = ResultSet("synthetic", cells={("a", "m", "single"): {"steady_mb": steady, "noisy_s": noisy},
                                           ("b", "m", "single"): {"steady_mb": steady, "noisy_s": steady}},
                       repetitions={("a", "m", "single"): 5, ("b", "m", "single"): 5})
    found = noise.study(result, baseline_n=5, gate_n=3)
    t = found["thresholds"]
    assert t["steady_mb"]["cv_pct_max"] < 1 < t["noisy_s"]["cv_pct_max"]
    assert 0 < t["steady_mb"]["threshold_pct"] < t["noisy_s"]["threshold_pct"]  # worst cell decides
    assert t["steady_mb"]["detectable_pct"] < t["noisy_s"]["detectable_pct"]
    assert t["noisy_s"]["detectable_pct"] > t["noisy_s"]["threshold_pct"]  # beyond the threshold, with p <= alpha
    assert noise.study(result, baseline_n=2, gate_n=2)["thresholds"]["steady_mb"]["detectable_pct"] is None


def test_thresholds_widen_with_the_number_of_checks_a_gate_run_makes():
    """One false alarm per gate run is what matters to CI: 10 cells with the same noise as 1 cell need a wider
    threshold, so that all their checks together stay within the family's false-alarm rate."""
    noisy = [1.0, 1.4, 0.7, 1.2, 0.9]

    def study(cells: int) -> dict:
        keys = [(f"s{i}", "m", "single") for i in range(cells)]
        result = ResultSet("synthetic", cells={k: {"noisy_s": noisy} for k in keys}, repetitions={k: 5 for k in keys})
        return noise.study(result, baseline_n=5, gate_n=3)

    one, ten = study(1), study(10)
    assert ten["checks_per_gate_run"] == 10 * one["checks_per_gate_run"] and ten["z"] > one["z"] > 1.645
    assert ten["thresholds"]["noisy_s"]["threshold_pct"] > one["thresholds"]["noisy_s"]["threshold_pct"]
    assert noise.family_z(1, 0.05) == pytest.approx(1.645, abs=1e-3)


def test_each_model_gets_the_threshold_its_own_noise_allows(tmp_path):
    """A short, jittery phase on one model must not blind the gate on a steady model beside it: a +20 %
    change on the steady model is flagged, the same change on the jittery one stays within its noise."""
    steady = [1.00, 1.01, 0.99, 1.005, 0.995]
    jittery = [1.0, 1.3, 0.8, 1.15, 0.9]
    cells = {f"{s}/{m}/single": {"weights_cpu_s": list(v)} for s in ("naive", "mmap")
             for m, v in (("steady", steady), ("jittery", jittery))}
    source = result_set(tmp_path / "run.json", cells)
    baselines = tmp_path / "baselines"
    done = cli("noise", "--from", str(source), "--save", "mine", "--dir", str(baselines))
    assert done.returncode == 0, done.stderr
    assert "Thresholds per model" in done.stdout
    study = json.loads((baselines / "mine.json").read_text())["noise"]
    per_model = {m: t["weights_cpu_s"] for m, t in study["thresholds_by_model"].items()}
    assert per_model["steady"] < 20 < per_model["jittery"]
    assert study["thresholds"]["weights_cpu_s"]["threshold_pct"] == per_model["jittery"]  # the worst cell of all
    slower_everywhere = result_set(tmp_path / "cur.json", slower(cells, "weights_cpu_s", 1.2))
    done = cli("gate", "--current", str(slower_everywhere), "--baselines", str(baselines))
    flagged = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("REGRESSION ")}
    assert done.returncode == 1 and flagged == {"naive/steady/single:", "mmap/steady/single:"}, done.stdout


def test_noise_saves_measured_thresholds_into_the_machine_class_baseline_and_the_gate_uses_them(tmp_path):
    source = result_set(tmp_path / "run.json", CLEAN)
    baselines = tmp_path / "baselines"
    done = cli("noise", "--from", str(source), "--save", "mine", "--dir", str(baselines))
    assert done.returncode == 0, done.stderr
    assert "| pss_anon_trimmed_mb | 1 |" in done.stdout and "| weights_s | " in done.stdout
    saved = json.loads((baselines / "mine.json").read_text())
    measured = saved["noise"]["thresholds"]["pss_anon_trimmed_mb"]["threshold_pct"]
    assert saved["environment"]["fingerprint"] == fingerprint() and 0 < measured < 10
    current = result_set(tmp_path / "cur.json", slower(CLEAN, "pss_anon_trimmed_mb", 1.0 + 1.5 * measured / 100))
    done = cli("gate", "--current", str(current), "--baselines", str(baselines))
    assert done.returncode == 1, done.stdout + done.stderr  # below the code's fallback +10%: a measured threshold
    assert "on this machine class by a noise study" in done.stdout
    other = result_set(tmp_path / "other.json", CLEAN, {**fingerprint(), "cpu": "Another CPU"})
    refused = cli("noise", "--from", str(other), "--save", "mine", "--dir", str(baselines))
    assert refused.returncode == 2 and "baseline of another machine class" in refused.stderr
    named = cli("noise", "--from", str(source), "--save", "--dir", str(tmp_path / "auto"))
    assert named.returncode == 0, named.stderr
    (path,) = (tmp_path / "auto").glob("*.json")  # named after the machine class
    assert path.stem.endswith(f"cpu-{machines.machine_class(fingerprint())}")


def test_an_older_baseline_without_the_new_metrics_is_gated_on_the_rest_with_a_warning(tmp_path):
    old = {cell: {m: v for m, v in metrics.items() if m in ("cold_start_s", "weights_s")}
           for cell, metrics in CLEAN.items()}
    baseline = result_set(tmp_path / "old.json", old)
    done = cli("gate", "--baseline", str(baseline), "--current", str(result_set(tmp_path / "c.json", CLEAN)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pss_anon_trimmed_mb is not in the baseline: rule pss_anon_trimmed_mb:median:+10% not checked" in done.stderr
    assert "| singleton/vits-tiny/single | cold_start_s |" in done.stdout
