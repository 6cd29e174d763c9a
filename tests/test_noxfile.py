"""The nox sessions that run benchmarks, checked without running them: which `ttsload` commands in which order.

A stand-in session records the commands; nothing is installed and no cell runs. Skipped where nox is not
installed (the `tests` session's own venv), run wherever the developer has nox.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

nox = pytest.importorskip("nox")
ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """Just enough of nox.Session: records what would run."""

    def __init__(self, posargs: list[str], venv: Path, output: str = ""):
        self.posargs, self.commands, self.output = posargs, [], output
        self.environments: list[object] = []  # each command's env= (None: nox's own)
        self.virtualenv = SimpleNamespace(location=str(venv))
        self.venv_backend = "virtualenv"

    def run(self, *args: str, **kwargs: object) -> str:
        self.commands.append(list(args))
        self.environments.append(kwargs.get("env"))
        return self.output  # what a silent run would have printed

    run_install = install = run

    def log(self, *args: object) -> None:
        pass

    def error(self, message: str) -> None:
        raise RuntimeError(message)


@pytest.fixture(scope="module")
def noxfile():
    spec = importlib.util.spec_from_file_location("ttsload_noxfile", ROOT / "noxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def runs_of(session: Recorder) -> list[list[str]]:
    return [c[2:] for c in session.commands if c[:2] == ["ttsload", "run"]]


def test_bench_large_runs_issue_12s_cells_in_order_each_into_its_own_folder(noxfile, tmp_path):
    session = Recorder([], tmp_path)
    noxfile.bench_large(session)
    assert ["ttsload", "models", "build", "xtts", "vits"] in session.commands
    runs = runs_of(session)
    assert [r[:r.index("--out")] for r in runs] == [
        ["--strategy", "naive,singleton,mmap,resident+mmap-meta,resident+safetensors,quantized", "--model", "xtts",
         "--requests", "3", "--repeat", "3", "--cache", "warm"],
        ["--strategy", "naive,mmap,resident+safetensors", "--model", "xtts", "--requests", "3", "--repeat", "3",
         "--cache", "cold"],
        ["--scenario", "workers", "--model", "xtts", "--strategy", "singleton,prefork+mmap", "--timeout", "1800"],
        ["--scenario", "switch-large"],
    ]
    folders = [Path(r[r.index("--out") + 1]) for r in runs]
    assert len(set(folders)) == 4 and len({f.parent for f in folders}) == 1
    assert folders[0].parent.parent == ROOT / "results"
    reports = [c[2:] for c in session.commands if c[:2] == ["ttsload", "report"]]
    assert reports == [[str(f)] for f in folders]  # a report after each run


def test_bench_large_appends_posargs_to_every_run_and_refuses_out(noxfile, tmp_path):
    session = Recorder(["--repeat", "1", "--requests", "1"], tmp_path)
    noxfile.bench_large(session)
    assert all(r[:r.index("--out")][-4:] == ["--repeat", "1", "--requests", "1"] for r in runs_of(session))
    with pytest.raises(RuntimeError, match="do not pass --out"):
        noxfile.bench_large(Recorder(["--out", "x"], tmp_path))


def test_bench_large_scenario_is_a_valid_switch_of_xtts_and_vits():
    from ttsload.bench.scenario import loading as scenarios

    scenario = scenarios.load("switch-large")
    assert scenario.kind == "switch" and scenario.default("models", []) == ["xtts", "vits"]
    assert [label for label, _ in scenario.variants()] == ["switch-large@k1", "switch-large@k2"]


def test_bench_keeps_its_out_and_reports_it(noxfile, tmp_path):
    session = Recorder(["--model", "vits-tiny", "--out", str(tmp_path / "mine")], tmp_path)
    noxfile.bench(session)
    assert runs_of(session) == [["--model", "vits-tiny", "--out", str(tmp_path / "mine")]]
    assert ["ttsload", "report", str(tmp_path / "mine")] in session.commands


def test_bench_runs_the_presets_and_the_best_known_strategies_on_vits(noxfile, tmp_path):
    from ttsload.strategies.registry import resolve

    session = Recorder([], tmp_path)
    noxfile.bench(session)
    [args] = runs_of(session)
    strategies = args[args.index("--strategy") + 1].split(",")
    assert strategies == [*noxfile.PRESETS.split(","), "zygote+mmap", "prefork+mmap:trim=1"]
    assert args[args.index("--model") + 1] == "vits"
    for name in strategies:
        resolve(name)


def test_bench_large_is_not_a_default_session(noxfile):
    assert "bench-large" not in noxfile.nox.options.sessions


def test_every_strategy_the_large_runs_name_exists(noxfile):
    """A bare loader name (`mmap-meta`) is no strategy: each name must resolve, or the run fails every cell."""
    from ttsload.strategies.registry import resolve

    for _, args in noxfile.LARGE_RUNS:
        if "--strategy" in args:
            for name in args[args.index("--strategy") + 1].split(","):
                resolve(name)


def test_gate_checks_invariants_and_picks_the_machine_class_baseline(noxfile, tmp_path, monkeypatch):
    monkeypatch.delenv("TTSLOAD_BASELINE", raising=False)
    monkeypatch.setenv("TTSLOAD_GATE", "stored")
    session = Recorder([], tmp_path, output=str(ROOT / "baselines" / "here.json"))
    noxfile.gate(session)
    (which, gate) = [c[2:] for c in session.commands if c[:2] == ["ttsload", "gate"]]
    assert "--which" in which
    (run,) = runs_of(session)
    assert run[:len(noxfile.GATE_CONFIG)] == noxfile.GATE_CONFIG  # a baseline matched: every cell it holds
    assert "--baseline" not in gate  # matched by machine class, not named
    assert gate[gate.index("--baselines") + 1] == str(ROOT / "baselines")
    assert gate[gate.index("--invariants") + 1] == str(ROOT / "baselines" / "invariants.toml")


def test_gate_with_no_baseline_runs_only_the_cells_the_invariants_compare(noxfile, tmp_path, monkeypatch):
    monkeypatch.delenv("TTSLOAD_BASELINE", raising=False)
    monkeypatch.setenv("TTSLOAD_GATE", "stored")
    session = Recorder([], tmp_path, output="no baseline for this machine class: X [class 0]; run ...")
    noxfile.gate(session)
    (run,) = runs_of(session)
    strategies, models = run[run.index("--strategy") + 1], run[run.index("--model") + 1]
    assert set(strategies.split(",")) == {"mmap", "naive", "singleton", "subprocess-worker"} and models == "vits"
    assert run[run.index("--requests") + 1] == "1" and run[run.index("--repeat") + 1] == noxfile.GATE_REPEAT
    (build,) = [c for c in session.commands if c[:3] == ["ttsload", "models", "build"]]
    assert build[3:] == ["vits"]


def test_gate_measures_the_working_tree_against_its_base_side_by_side(noxfile, tmp_path, monkeypatch):
    monkeypatch.delenv("TTSLOAD_GATE", raising=False)
    monkeypatch.setenv("TTSLOAD_GATE_BASE", "abc123")
    session = Recorder(["--duet"], tmp_path)
    noxfile.gate(session)
    assert not runs_of(session)  # no separate `ttsload run`: the A/B gate runs its own cells
    (gate,) = [c[2:] for c in session.commands if c[:2] == ["ttsload", "gate"]]
    assert gate[:3] == ["--ab", "abc123", str(tmp_path / "bin" / "python")]
    assert gate[gate.index("--strategy") + 1] == "naive,mmap" and gate[gate.index("--model") + 1] == "vits"
    assert gate[gate.index("--pairs") + 1] == noxfile.AB_PAIRS and gate[-1] == "--duet"
    assert gate[gate.index("--invariants") + 1] == str(ROOT / "baselines" / "invariants.toml")
    strategies = noxfile.AB_CELLS[1].split(",")
    assert len(strategies) * 2 * int(noxfile.AB_PAIRS) <= 24  # the CI budget: cells the A/B gate runs


def test_the_ab_base_is_the_merge_base_or_the_parent(noxfile, tmp_path, monkeypatch):
    import subprocess

    monkeypatch.delenv("TTSLOAD_GATE_BASE", raising=False)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(tmp_path)}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True,
                              env=env).stdout.strip()

    git("init", "-q", "-b", "main")
    git("commit", "-q", "--allow-empty", "-m", "one")
    assert noxfile.ab_base(tmp_path) is None  # one commit: nothing to compare with
    git("commit", "-q", "--allow-empty", "-m", "two")
    assert noxfile.ab_base(tmp_path) == git("rev-parse", "HEAD~1")  # on main itself: the parent
    fork = git("rev-parse", "HEAD")
    git("checkout", "-q", "-b", "topic")
    git("commit", "-q", "--allow-empty", "-m", "three")
    git("commit", "-q", "--allow-empty", "-m", "four")
    assert noxfile.ab_base(tmp_path) == fork  # a branch: where it left main


def test_baseline_and_noise_run_the_noise_study_over_the_gates_configuration(noxfile, tmp_path):
    session = Recorder(["epyc"], tmp_path)
    noxfile.baseline(session)
    (study,) = [c[2:] for c in session.commands if c[:2] == ["ttsload", "noise"]]
    assert study[:len(noxfile.GATE_CONFIG)] == noxfile.GATE_CONFIG
    assert study[study.index("--runs") + 1] == "5" and study[study.index("--save") + 1] == "epyc"
    quiet = Recorder([], tmp_path)
    noxfile.noise(quiet)
    (study,) = [c[2:] for c in quiet.commands if c[:2] == ["ttsload", "noise"]]
    assert "--save" not in study and study[study.index("--gate-repeat") + 1] == noxfile.GATE_REPEAT


def test_unit_runs_the_fast_tier_with_its_guard_on_and_tests_runs_both_tiers(noxfile, tmp_path):
    fast = Recorder([], tmp_path)
    noxfile.unit(fast)
    (index,) = [i for i, c in enumerate(fast.commands) if c[0] == "pytest"]
    assert fast.commands[index][1:3] == ["-m", "not integration"]
    assert fast.environments[index] == {"TTSLOAD_UNIT_TIER": "1"}  # tests/conftest.py's guard
    both = Recorder([], tmp_path)
    noxfile.tests(both)
    (p, parallel), (a, alone) = [(i, c) for i, c in enumerate(both.commands) if c[0] == "pytest"]
    assert "not integration" not in parallel + alone  # both tiers
    assert parallel[parallel.index("-m") + 1] == "not alone" and alone[alone.index("-m") + 1] == "alone"
    assert both.environments[p]["OMP_NUM_THREADS"] == "1" and not both.environments[a]  # timings judged: defaults
    assert "unit" not in noxfile.nox.options.sessions  # `nox` alone still runs both tiers


def test_test_data_rerecords_through_the_script_the_readme_names(noxfile, tmp_path):
    session = Recorder(["gate"], tmp_path)
    noxfile.test_data(session)
    assert ["python", "tests/data/regenerate.py", "gate"] in session.commands
    assert "tests/data/regenerate.py" in (ROOT / "tests" / "data" / "README.md").read_text()


def test_docs_checks_the_generated_pages_before_a_strict_build(noxfile, tmp_path):
    session = Recorder([], tmp_path)
    noxfile.docs(session)
    check = session.commands.index(["python", "docs/gen_reference.py", "--check"])
    (build,) = [c for c in session.commands if c[:2] == ["mkdocs", "build"]]
    assert "--strict" in build and session.commands.index(build) > check


def test_under_no_venv_nothing_is_installed_and_commands_use_the_python_on_path(noxfile, tmp_path):
    """`.ci/run` runs the gate with `nox --no-venv` and the tests venv on PATH: no second torch install."""
    import shutil

    session = Recorder([], tmp_path / "venv")
    session.venv_backend = "none"
    noxfile.install(session, "test")
    assert session.commands == []
    assert noxfile.session_python(session) == shutil.which("python")
    session.venv_backend = "virtualenv"
    assert noxfile.session_python(session) == str(tmp_path / "venv" / "bin" / "python")
