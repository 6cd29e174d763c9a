"""`ttsload gate --ab`: the schedule, the judgement on paired ratios, the A-against-A thresholds, sides that
cannot be built (never a pass), and one real A/B run of a planted memory regression."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RESULTS, cli, ttsload
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.regression import ab, abjudge, abnoise, abresults, history, sides
from ttsload.bench.regression.ab import Pair

CELL = "naive/vits/single"


def pairs_of(a: list[float], b: list[float], metric: str = "weights_cpu_s", cell: str = CELL) -> list[Pair]:
    return [Pair(cell, i, "AB" if i % 2 == 0 else "BA", {"A": {metric: x}, "B": {metric: y}})
            for i, (x, y) in enumerate(zip(a, b, strict=True))]


A = [1.00, 1.30, 0.90, 1.10, 0.95, 1.20, 1.05, 1.00]  # a host whose speed moves by 40 % across the run


def test_schedule_alternates_the_order_of_consecutive_pairs():
    steps = ab.schedule(cells=2, pairs=3)
    assert [(p, c) for p, c, _ in steps] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [order for _, _, order in steps] == ["AB", "BA", "BA", "AB", "AB", "BA"]
    assert [order for *_, order in ab.schedule(cells=1, pairs=4)] == ["AB", "BA", "AB", "BA"]


@pytest.mark.parametrize("cells", [1, 2, 3, 4])
def test_every_cell_runs_as_often_first_as_second(cells):
    """A cell with one fixed order confounds the side with whatever ran just before (a false alarm seen in CI:
    2 cells, mmap always B first, cold-start CPU +11 % on identical code)."""
    steps = ab.schedule(cells=cells, pairs=6)
    for cell in range(cells):
        orders = [order for _, c, order in steps if c == cell]
        assert orders == ["AB", "BA"] * 3 or orders == ["BA", "AB"] * 3


def test_a_regression_is_flagged_when_the_whole_interval_is_above_the_threshold():
    b = [x * r for x, r in zip(A, [1.10, 1.12, 1.09, 1.11, 1.10, 1.13, 1.08, 1.10], strict=True)]
    check = abjudge.judge(CELL, "weights_cpu_s", pairs_of(A, b), threshold_pct=5)
    assert check.verdict == abjudge.REGRESSION and check.pairs == 8
    assert check.low is not None and check.low > 1.05 and check.high is not None and check.high < 1.14
    text = abjudge.line(check)
    assert "weights_cpu_s (weights phase, CPU)" in text and "over 8 pairs" in text and "B/A 1.10" in text
    assert abjudge.exit_code([check]) == ExitCode.FAILED


def test_a_change_whose_interval_reaches_below_the_threshold_is_not_a_regression():
    b = [x * r for x, r in zip(A, [1.10, 1.02, 1.09, 1.03, 1.10, 1.01, 1.08, 1.04], strict=True)]
    check = abjudge.judge(CELL, "weights_cpu_s", pairs_of(A, b), threshold_pct=5)
    assert check.verdict == abjudge.OK, abjudge.line(check)


def test_a_faster_head_is_improved_and_passes():
    b = [x * 0.8 for x in A]
    checks = abjudge.judge_all(pairs_of(A, b), {"weights_cpu_s": 5}, metrics=("weights_cpu_s",))
    assert [c.verdict for c in checks] == [abjudge.IMPROVED]
    assert abjudge.exit_code(checks) == ExitCode.OK


def test_too_few_pairs_are_undecided_and_say_how_many_are_needed():
    assert abjudge.min_pairs(0.95) == 6
    check = abjudge.judge(CELL, "weights_cpu_s", pairs_of(A[:5], [x * 1.5 for x in A[:5]]), threshold_pct=5)
    assert check.verdict == abjudge.UNDECIDED and "at least 6" in check.note
    assert abjudge.exit_code([check]) == ExitCode.UNDECIDED


def test_a_side_that_gave_nothing_could_not_be_judged_never_passes():
    pairs = [Pair(CELL, i, "AB", {"A": {"weights_cpu_s": 1.0}}, {"B": "cell failed"}) for i in range(6)]
    check = abjudge.judge(CELL, "weights_cpu_s", pairs, threshold_pct=5)
    assert check.verdict == abjudge.UNJUDGED and "B gave no weights_cpu_s in 6" in check.note
    assert abjudge.exit_code([check]) == ExitCode.UNJUDGED
    assert abjudge.exit_code([]) == ExitCode.UNJUDGED
    nan = abjudge.judge(CELL, "weights_cpu_s", pairs_of(A, A), threshold_pct=math.nan)
    assert nan.verdict == abjudge.UNJUDGED


def test_a_missing_pair_is_left_out_and_said():
    pairs = pairs_of(A, [x * 1.2 for x in A])
    pairs[3].values.pop("B")
    check = abjudge.judge(CELL, "weights_cpu_s", pairs, threshold_pct=5)
    assert check.pairs == 7 and "B gave no weights_cpu_s in 1" in check.note


def test_the_noise_study_sets_thresholds_no_a_against_a_run_crosses():
    import numpy as np

    rng = np.random.default_rng(1)
    runs = [pairs_of(list(rng.uniform(0.9, 1.1, 6)), list(rng.uniform(0.9, 1.1, 6))) for _ in range(4)]
    for run in runs:  # memory: a steady metric, ratios within 0.5 %
        for pair in run:
            for label in "AB":
                pair.values[label]["pss_anon_trimmed_mb"] = 100 * float(rng.uniform(0.995, 1.005))
    found = abnoise.study(runs, pairs=6)
    limits = found["thresholds_pct"]
    assert 0 <= limits["pss_anon_trimmed_mb"] < limits["weights_cpu_s"]
    assert found["false_alarms_in_study"] == 0 and found["checks_per_gate_run"] == len(abjudge.METRICS)
    assert abnoise.cell_threshold([1.0], 6, 1) is None and abnoise.cell_threshold([1.0, 1.1], 5, 1) is None


def test_a_stored_study_is_found_by_machine_class_only(tmp_path):
    here = {"cpu": "x", "cores_logical": 2, "memory_gb": 8, "isa": [], "python": "3.11", "torch": "2", "coqui-tts": "1"}
    found = {"thresholds_pct": {"weights_cpu_s": 4.0, "cold_start_s": "bad"}}
    abnoise.save(found, here, tmp_path, "mine")
    path, thresholds = abnoise.find(tmp_path, here)
    assert path == tmp_path / "ab-noise" / "mine.json" and thresholds["weights_cpu_s"] == 4.0
    assert math.isnan(thresholds["cold_start_s"])  # fails closed: its checks could not be judged
    assert abnoise.find(tmp_path, {**here, "cpu": "y"}) == (None, {})


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo)})


def test_a_side_that_names_nothing_could_not_judge_in_one_line(tmp_path):
    done = cli("gate", "--ab", "no-such-ref-anywhere", "HEAD", "--out", str(tmp_path / "ab"),
               "--side-cache", str(tmp_path / "cache"), "--json", str(tmp_path / "v.json"))
    assert done.returncode == ExitCode.UNJUDGED, done.stdout + done.stderr
    said = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("ttsload gate: could not judge: side A: 'no-such-ref-anywhere'")
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] == "could not judge"


def test_a_ref_that_is_not_installable_is_refused_before_any_cell(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "README").write_text("no package here\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "x")
    with pytest.raises(sides.SideError, match="side A: git HEAD .* has no pyproject.toml"):
        sides.resolve("HEAD", "A", repo, tmp_path / "cache")
    with pytest.raises(sides.SideError, match="neither a model folder"):
        sides.resolve("v9.9", "B", repo, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_non_executable_file_is_not_an_environment(tmp_path):
    odd = tmp_path / "python"
    odd.write_text("")
    with pytest.raises(sides.SideError, match="not an executable python interpreter"):
        sides.resolve(str(odd), "B", None, tmp_path)


def test_layering_needs_the_same_lock_and_dependency_lists():
    project = '[project]\nname = "ttsload"\ndependencies = ["numpy"]\n'
    assert sides.dependencies("a==1\n", project) == sides.dependencies("a==1\n", project + "version = '9'\n")
    assert sides.dependencies("a==1\n", project) != sides.dependencies("a==2\n", project)
    assert sides.dependencies("a==1\n", project) != sides.dependencies("a==1\n", project.replace("numpy", "torch"))
    assert sides.cache_key("abc", "a==1") != sides.cache_key("abc", "a==2")
    assert sides.torch_pin("# lock\nnumpy==2\ntorch==2.13.0\n") == "torch==2.13.0" and sides.torch_pin("a==1") is None


def test_history_marks_the_lines_of_ab_runs(tmp_path):
    folder = RESULTS / "gate" / "same1"
    store = tmp_path / "history.jsonl"
    history.append(folder, store)
    import shutil

    shutil.copytree(folder, tmp_path / "B" / "pair000-00")
    abresults.append_history(tmp_path / "B", {"base": "abc", "head": "def"}, store, commit="def")
    metric = "cold_start_s"
    series = history.series(history.read(store), metric)
    assert series and all([p.ab for p in points] == [False, True] for points in series.values())
    assert "(A/B run)" in history.show(metric, store, out=tmp_path / "h.png")
    assert [header["git_sha"] for header, _ in history.read(store)][-1] == "def"  # the ref's, not the tree's


def test_pooled_side_sums_its_cell_folders(tmp_path):
    import shutil

    folder = RESULTS / "gate" / "same1"
    for name in ("pair000-00", "pair001-00"):
        shutil.copytree(folder, tmp_path / "B" / name)
    pooled = abresults.pooled(tmp_path / "B")
    single = abresults.pooled(tmp_path / "B" / "pair000-00" / "..")
    key = next(iter(pooled.cells))
    assert pooled.repetitions[key] == single.repetitions[key]
    assert pooled.repetitions[key] == 2 * next(iter(abresults.ResultSet.from_folder(folder).repetitions.values()))


@pytest.mark.integration
def test_a_planted_memory_regression_fails_an_ab_run_of_head_against_itself(tiny, tmp_path):
    """Both sides are the current environment; B's eager loader keeps +10 % anonymous memory with the model
    (singleton: the model is resident when the steady reading is taken; naive frees it per request)."""
    out = tmp_path / "ab"
    done = ttsload("gate", "--ab", sys.executable, sys.executable, "--strategy", "singleton", "--model", "vits-tiny",
                   "--pairs", "6", "--out", str(out), "--no-history", "--json", str(tmp_path / "v.json"),
                   "--b-env", "TTSLOAD_TEST_STRATEGIES=1", "--b-env", "TTSLOAD_TEST_PLANT=anon-eager",
                   "--b-env", "TTSLOAD_TEST_ANON_PCT=10", timeout=1800)
    assert done.returncode == ExitCode.FAILED, done.stdout + done.stderr
    assert "REGRESSION singleton/vits-tiny/single: pss_anon_trimmed_mb" in done.stdout
    verdict = json.loads((tmp_path / "v.json").read_text())
    memory = next(c for c in verdict["checks"] if c["metric"] == "pss_anon_trimmed_mb")
    assert memory["pairs"] == 6 and 1.05 < memory["ratio"] < 1.2
    _, pairs = ab.load(out)
    assert [p.order for p in pairs] == ["AB", "BA"] * 3
    assert all("host_python_s" in p.values[label] for p in pairs for label in "AB")  # calibration per cell


@pytest.mark.integration
def test_a_git_ref_side_is_built_once_and_a_broken_install_could_not_judge(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "pyproject.toml").write_text("[project]\nname = \n")  # not TOML pip can read
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "broken")
    with pytest.raises(sides.SideError, match="side B: installing HEAD failed"):
        sides.resolve("HEAD", "B", repo, tmp_path / "cache")


def test_cells_that_give_nothing_are_recorded_as_failed_pairs_and_the_run_goes_on(tmp_path):
    """A side whose every cell run exits without results: each pair says so, ab.json keeps them, and the
    judgement could not judge (never a pass)."""
    launched: list[tuple[str, list[str]]] = []

    def launch(side, command, core):
        launched.append((side.label, command))
        return subprocess.Popen(["true"], stdout=subprocess.PIPE)

    side = sides.Side("A", sys.executable, "env", Path(sys.executable), tmp_path)
    plan = ab.AbPlan([("naive", "vits"), ("mmap", "vits")], pairs=2)
    found = ab.run(side, sides.Side("B", "x", "model", Path(sys.executable), tmp_path, model=tmp_path / "m"),
                   plan, tmp_path / "out", launch=launch)
    assert [label for label, _ in launched] == ["A", "B", "B", "A", "B", "A", "A", "B"]
    b_command = launched[1][1]
    assert b_command[b_command.index("--model") + 1] == str(tmp_path / "m") and "--no-history" in b_command
    assert all(set(p.failed) == {"A", "B"} for p in found)
    _, saved = ab.load(tmp_path / "out")
    assert len(saved) == 4 and saved[0].failed["A"].startswith("ttsload run exited 0")
    assert abjudge.exit_code(abjudge.judge_all(saved, {})) == ExitCode.UNJUDGED
    duet = ab.cell_command(side, "naive", "vits", tmp_path, ab.AbPlan([("naive", "vits")], 1, ab.DUET))
    assert duet[duet.index("--threads") + 1] == "1"


def test_fail_with_ab_takes_median_ratio_thresholds_only(tmp_path):
    done = cli("gate", "--ab", "HEAD", "HEAD", "--fail", "weights_cpu_s:max:+5%", "--out", str(tmp_path))
    assert done.returncode == ExitCode.USAGE and "METRIC:median:+X%" in done.stderr


def test_an_unlayered_side_is_repaired_by_its_own_doctor_and_a_failing_doctor_could_not_judge(tmp_path):
    """A side with its own locked packages gets `ttsload doctor --fix` after pip, as nox's install does (PyPI's
    torchaudio cannot load beside CPU torch until repaired); a venv the doctor cannot repair is no side."""
    calls: list[list[str]] = []

    def run(command, **_):
        command = [str(c) for c in command]
        calls.append(command)
        failed = "doctor" in command and "broken" in command[0]
        out = str(tmp_path / "venv" / "lib" / "ttsload" / "__init__.py") + "\n"
        said = "torchaudio: cannot load" if failed else ""
        return subprocess.CompletedProcess(command, 1 if failed else 0, out, said)

    (tmp_path / "tree").mkdir()
    sides._install(tmp_path / "tree", tmp_path / "venv", False, "A", "HEAD~1", run)
    doctor = [i for i, c in enumerate(calls) if c[-3:] == ["ttsload", "doctor", "--fix"]]
    installs = [i for i, c in enumerate(calls) if "install" in c]
    assert doctor and installs and doctor[0] > max(installs)
    with pytest.raises(sides.SideError, match="side A: HEAD~1's venv fails `ttsload doctor --fix`: torchaudio"):
        sides._install(tmp_path / "tree", tmp_path / "broken" / "venv", False, "A", "HEAD~1", run)
