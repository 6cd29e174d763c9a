"""Sessions: tests (the CI command, both tiers), unit (the fast tier alone), test-data (re-records the runs
the fast tier reads), gate (the CI regression gate), bench (the main job), bench-large (the large-model
cells; never part of tests), baseline and noise (per machine class), microbench, lint (ruff and mypy), docs (the
documentation site), and latest (the newest versions pyproject.toml allows, without the lock).

torch is installed first and pinned, so pip takes the CPU wheel instead of a multi-GB CUDA build. Every
other package comes from constraints.txt, the lock of the versions the tests passed on, so a fresh clone
gets what was tested. Virtualenvs are reused, and a stamp of the install inputs skips reinstalling when
nothing changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import string
import time
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

TORCH = "torch==2.13.0"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # torch's default compute threads in each process
ROOT = Path(__file__).parent
LOCK = ROOT / "constraints.txt"

def install(session: nox.Session, extras: str, locked: bool = True) -> None:
    """Install torch first, then ttsload constrained by the lock (`locked`, else the newest allowed versions);
    skip both when the stamp says nothing changed.

    Every step is an install step (`run_install` runs under `--install-only` too, where `session.run`
    is skipped), and the stamp is written only after `ttsload doctor --fix` passes (imports, audio I/O
    through torchcodec and FFmpeg, onnxruntime; it repairs the known failures first): `nox -s tests
    --install-only && nox -s tests` works, and a broken venv is never stamped.
    """
    if session.venv_backend == "none":  # `nox --no-venv`: the caller's environment, e.g. CI's tests venv on PATH
        session.log("--no-venv: using the environment on PATH as it is (no install)")
        return
    key = hashlib.sha256((TORCH + extras + (ROOT / "pyproject.toml").read_text() + LOCK.read_text()).encode())
    key = key.hexdigest() if locked else "unlocked: always upgraded"
    stamp = Path(session.virtualenv.location) / ".ttsload-installed"
    if locked and stamp.is_file() and stamp.read_text() == key:
        session.log("dependencies unchanged since last install: skipping pip")
        return
    stamp.unlink(missing_ok=True)
    session.install(TORCH)
    pins = ["-c", str(LOCK)] if locked else ["--upgrade", "--upgrade-strategy", "eager"]
    session.install("-e", f".[{extras}]", *pins)
    session.run_install("python", "-P", "-m", "ttsload", "doctor", "--fix")  # fails unless every check passes
    stamp.write_text(key)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite on real tiny Coqui models (no mocks): both tiers, unit and integration.

    Most tests wait on child processes for much of their time, so they run in two pytest-xdist workers, a
    module to a worker (its module fixtures are built once), with one compute thread per process: two
    workers' cells, each with torch's default of a thread per core, oversubscribe the cores, and the spinning
    thread teams cost more than they compute (test_pipeline + test_limits: 130 s with the default, 73 s with
    one thread, on 2 cores). The tests marked `alone` judge timings and run afterwards with nothing beside
    them, with the default threads. Arguments replace both runs with one.
    """
    install(session, "test")
    if session.posargs:
        session.run("pytest", *session.posargs)
        return
    # --durations: CI logs where its time goes
    session.run("pytest", "-q", "--durations=25", "-n", "2", "--dist", "loadfile", "-m", "not alone",
                env=ONE_THREAD)
    session.run("pytest", "-q", "--durations=10", "-m", "alone")


@nox.session(python="3.11")
def unit(session: nox.Session) -> None:
    """The fast tier: tests that build no model and start no ttsload child (report, gate, merge, statistics,
    schemas, CLI argument errors), on the runs recorded in tests/data/results/. With TTSLOAD_UNIT_TIER=1,
    tests/conftest.py fails any test that builds a model or starts a ttsload child without its marker."""
    install(session, "test")
    session.run("pytest", "-m", "not integration", *(session.posargs or ["-q", "--durations=10"]),
                env={"TTSLOAD_UNIT_TIER": "1"})


@nox.session(name="test-data", python="3.11")
def test_data(session: nox.Session) -> None:
    """Re-record tests/data/results/ with real runs of the tiny VITS (tests/data/README.md)."""
    install(session, "test")
    session.run("python", "tests/data/regenerate.py", *session.posargs)


def run_and_report(session: nox.Session, args: list[str], out: Path) -> None:
    """`ttsload run ARGS --out OUT` (failed cells do not stop the session: they are in the report), then its report."""
    session.run("ttsload", "run", *args, "--out", str(out), success_codes=[0, 1])
    session.log(f"results are in {out} (results.jsonl, summary.csv, logs/)")
    session.run("ttsload", "report", str(out))  # prints the report's path


# Beside the presets, the two best-known combinations (docs/strategies.md): workers forked from a zygote that
# holds only the runtime and load mmap'ed weights, and prefork over mmap'ed weights with malloc_trim after every
# request. The main job shows where the presets stand against them.
BEST_KNOWN = "zygote+mmap,prefork+mmap:trim=1"


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The five presets and the best-known strategies on the default `vits` model, warm cache, 3 fresh-process
    repetitions."""
    install(session, "test")
    session.run("ttsload", "models", "build", "vits")
    args = session.posargs or [
        "--strategy", f"{PRESETS},{BEST_KNOWN}",
        "--model", "vits", "--requests", "10", "--repeat", "3", "--cache", "warm",
    ]
    if "--out" in args:
        index = args.index("--out")
        out, args = Path(args[index + 1]), [*args[:index], *args[index + 2:]]
    else:
        out = ROOT / "results" / time.strftime("bench-%Y%m%d-%H%M%S")
    run_and_report(session, args, out)


# The heavy large-model cells (XTTS), run in this order, each into its own folder of one session's folder.
# XTTS's loads and syntheses are long, so the scenario runs get a longer deadline than their scripts' own.
LARGE_MODELS = ["xtts", "vits"]
LARGE_RUNS: list[tuple[str, list[str]]] = [
    ("xtts-warm", ["--strategy", "naive,singleton,mmap,resident+mmap-meta,resident+safetensors,quantized",
                   "--model", "xtts", "--requests", "3", "--repeat", "3", "--cache", "warm"]),
    ("xtts-cold", ["--strategy", "naive,mmap,resident+safetensors", "--model", "xtts", "--requests", "3",
                   "--repeat", "3", "--cache", "cold"]),
    ("xtts-workers", ["--scenario", "workers", "--model", "xtts", "--strategy", "singleton,prefork+mmap",
                      "--timeout", "1800"]),
    ("xtts-vits-switch", ["--scenario", "switch-large"]),
]


def large_runs(posargs: list[str], parent: Path) -> list[tuple[list[str], Path]]:
    """(ttsload run arguments, results folder) of each run of `bench-large`, in order.

    Arguments after `--` are appended to every run, where the last of a repeated option wins
    (`-- --repeat 1 --requests 1` is a quick pass over all four). `--out` is refused: every run
    has its own folder.
    """
    if "--out" in posargs:
        raise ValueError("bench-large writes each run into its own folder under results/: do not pass --out")
    return [([*args, *posargs], parent / name) for name, args in LARGE_RUNS]


@nox.session(name="bench-large", python="3.11")
def bench_large(session: nox.Session) -> None:
    """The large-model cells: XTTS with six loaders warm, three cold, workers, a switch with vits."""
    try:
        runs = large_runs(session.posargs, ROOT / "results" / time.strftime("bench-large-%Y%m%d-%H%M%S"))
    except ValueError as exc:
        session.error(str(exc))
    install(session, "test")
    session.run("ttsload", "models", "build", *LARGE_MODELS)
    for args, out in runs:
        run_and_report(session, args, out)


PRESETS = "naive,singleton,mmap,quantized,subprocess-worker"
# The quick comparison run of `nox -s gate`; `nox -s baseline` and `nox -s noise` run the same with more
# repetitions. vits is in it because the in-run invariants (baselines/invariants.toml) compare vits cells.
GATE_OPTIONS = ["--requests", "1", "--cache", "warm"]
GATE_CONFIG = ["--strategy", PRESETS, "--model", "vits-tiny,vits", *GATE_OPTIONS]
GATE_REPEAT, BASELINE_REPEAT = "3", "5"
BASELINES = ROOT / "baselines"  # one per machine class; the gate picks the one matching the run (README there)


def invariant_cells(path: Path) -> list[str]:
    """`--strategy S --model M` of the single-scenario cells the in-run invariants compare: what the gate runs
    when no baseline matches this machine class (nothing absolute to compare, so nothing else is needed)."""
    import tomllib

    cells = [cell.split("/") for entry in tomllib.loads(path.read_text())["invariant"]
             for cell in (entry["left"], entry["right"])]
    single = [(strategy, model) for strategy, model, scenario in cells if scenario == "single"]
    return ["--strategy", ",".join(sorted({s for s, _ in single})), "--model", ",".join(sorted({m for _, m in single}))]


# The A/B gate of CI: the weights invariant's two cells, base and head interleaved, 6 pairs each (the fewest
# whose sign-test interval reaches 95 %): 2 x 2 x 6 = 24 one-repetition cells, against the stored gate's 12.
AB_CELLS = ["--strategy", "naive,mmap", "--model", "vits"]
AB_PAIRS = "6"


def ab_base(root: Path = ROOT) -> str | None:
    """What the A/B gate measures the working tree against: TTSLOAD_GATE_BASE, else the merge base with
    origin/main (or main) when HEAD is not on it, else HEAD~1; None when there is none (a shallow clone)."""
    import subprocess

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None

    if os.environ.get("TTSLOAD_GATE_BASE"):
        return os.environ["TTSLOAD_GATE_BASE"]
    head = git("rev-parse", "HEAD")
    for target in ("origin/main", "main"):
        found = git("merge-base", "HEAD", target)
        if found and found != head:
            return found
    return git("rev-parse", "--verify", "--quiet", "HEAD~1^{commit}")


@nox.session(python="3.11")
def gate(session: nox.Session) -> None:
    """The A/B gate: the working tree (this session's venv) against the merge base with main, or HEAD~1
    (`ab_base`), measured side by side in one run and judged on paired ratios, plus the in-run invariants on
    the head side's cells. TTSLOAD_GATE=stored (or no base to compare with) runs the stored-baseline gate
    instead (`stored_gate`), which also judges memory against other days and feeds the trends.

    Extra arguments go to `ttsload gate`. A planted regression in the head side:
    `nox -s gate -- --b-env TTSLOAD_TEST_STRATEGIES=1 --b-env TTSLOAD_TEST_PLANT=cpu-eager`.
    """
    install(session, "test")
    base = None if os.environ.get("TTSLOAD_GATE") == "stored" else ab_base()
    if base is None:
        if os.environ.get("TTSLOAD_GATE") != "stored":
            session.log("no base commit to measure against (no merge base, no HEAD~1): the stored-baseline gate")
        stored_gate(session)
        return
    session.run("ttsload", "models", "build", *AB_CELLS[AB_CELLS.index("--model") + 1].split(","))
    out = ROOT / "results" / time.strftime("gate-ab-%Y%m%d-%H%M%S")
    head = session_python(session)
    session.log(f"A/B gate: base {base} against this working tree ({head})")
    session.run("ttsload", "gate", "--ab", base, head, *AB_CELLS, "--pairs", AB_PAIRS, "--out", str(out),
                "--baselines", str(BASELINES), "--invariants", str(BASELINES / "invariants.toml"),
                "--json", str(out / "gate.json"), *session.posargs)


def session_python(session: nox.Session) -> str:
    """The interpreter the session's commands run with: its venv's, or under `--no-venv` the first on PATH."""
    if session.venv_backend == "none":
        return shutil.which("python") or "python"
    return str(Path(session.virtualenv.location) / "bin" / "python")


def stored_gate(session: nox.Session) -> None:
    """Against the baseline of this machine class: the five presets on vits-tiny and vits, compared in absolute
    terms, and the in-run invariants. With no baseline for this class: one line saying so, and a run of only the
    cells the invariants compare (4 of the 10), which hold on any machine.

    Extra arguments go to `ttsload gate` (e.g. `-- --fail cold_start_s:median:+20%`); TTSLOAD_BASELINE=FILE
    names a baseline instead of matching one. A planted regression:
    `TTSLOAD_GATE=stored TTSLOAD_TEST_STRATEGIES=1 TTSLOAD_TEST_PLANT=cpu-eager nox -s gate`.
    """
    chosen = os.environ.get("TTSLOAD_BASELINE")
    found = chosen or session.run("ttsload", "gate", "--which", "--baselines", str(BASELINES), silent=True,
                                  success_codes=[0, 5]).strip()
    matched = bool(chosen) or not found.startswith("no baseline")
    session.log(f"baseline: {found}" if matched else f"{found}: running only the invariants' cells")
    config = GATE_CONFIG if matched else [*invariant_cells(BASELINES / "invariants.toml"), *GATE_OPTIONS]
    session.run("ttsload", "models", "build", *config[config.index("--model") + 1].split(","))
    out = ROOT / "results" / time.strftime("gate-%Y%m%d-%H%M%S")
    session.run("ttsload", "run", *config, "--repeat", GATE_REPEAT, "--out", str(out))
    session.run("ttsload", "gate", "--current", str(out), *(["--baseline", chosen] if chosen else []),
                "--baselines", str(BASELINES), "--invariants", str(BASELINES / "invariants.toml"),
                "--json", str(out / "gate.json"), *session.posargs)


def noise_args(posargs: list[str], save: bool) -> list[str]:
    """`ttsload noise` over the gate's configuration, 5 runs; `--save NAME` when saving (NAME: posargs[0],
    else one derived from the machine class)."""
    name = posargs[0] if posargs else None
    saving = (["--save", name] if name else ["--save"]) if save or name else []
    return [*GATE_CONFIG, "--runs", BASELINE_REPEAT, "--gate-repeat", GATE_REPEAT, *saving, "--dir", str(BASELINES)]


@nox.session(python="3.11")
def baseline(session: nox.Session) -> None:
    """Measure this machine class's baseline: the gate's run with 5 repetitions, interleaved, saved as
    baselines/NAME.json together with the thresholds its noise study measured (`ttsload noise --save`)."""
    install(session, "test")
    session.run("ttsload", "models", "build", "vits-tiny", "vits")
    out = ROOT / "results" / time.strftime("baseline-%Y%m%d-%H%M%S")
    session.run("ttsload", "noise", *noise_args(session.posargs, save=True), "--out", str(out),
                "--json", str(out / "noise.json"))


@nox.session(python="3.11")
def noise(session: nox.Session) -> None:
    """The noise study alone (per metric: CV, threshold, detectable change); `-- NAME` also saves it as a baseline."""
    install(session, "test")
    session.run("ttsload", "models", "build", "vits-tiny", "vits")
    out = ROOT / "results" / time.strftime("noise-%Y%m%d-%H%M%S")
    session.run("ttsload", "noise", *noise_args(session.posargs, save=False), "--out", str(out),
                "--json", str(out / "noise.json"))


@nox.session(name="ab-noise", python="3.11")
def ab_noise(session: nox.Session) -> None:
    """The A/B gate's thresholds: 5 A-against-A runs of the CI gate's cells in this environment; `-- NAME` saves
    them as baselines/ab-noise/NAME.json, which `nox -s gate` then uses on this machine class."""
    install(session, "test")
    session.run("ttsload", "models", "build", *AB_CELLS[AB_CELLS.index("--model") + 1].split(","))
    out = ROOT / "results" / time.strftime("ab-noise-%Y%m%d-%H%M%S")
    save = ["--save", session.posargs[0]] if session.posargs else []
    session.run("ttsload", "gate", "--ab-noise", "5", *AB_CELLS, "--pairs", AB_PAIRS, "--out", str(out),
                "--baselines", str(BASELINES), "--json", str(out / "ab-noise.json"), *save)


@nox.session(python="3.11")
def microbench(session: nox.Session) -> None:
    """pytest-benchmark: each loader's load and one synthesis, saved and compared with the last saved run.

    Not in CI: on the shared 2-core machine the minimum of one benchmark moved up to 4x between two
    runs (baselines/README.md), so only a quiet machine can use a tight `--benchmark-compare-fail`.
    Arguments replace the default check, e.g. `nox -s microbench -- --benchmark-compare-fail=min:20%`.
    """
    install(session, "test")
    check = session.posargs or ["--benchmark-compare-fail=min:100%"]
    session.run("pytest", "tests/benchmarks", "--benchmark-autosave", "--benchmark-compare", "--benchmark-sort=name",
                *check)


def lock_lines(freeze: str) -> list[str]:
    """`pip freeze --all` output as lock lines: sorted, without local version labels (the CPU wheel is
    2.13.0+cpu on disk, 2.13.0 everywhere else), without ttsload itself and without pip."""
    lines = {line.split("+", 1)[0].strip() for line in freeze.splitlines()
             if "==" in line and not line.lower().startswith(("ttsload==", "-e ", "pip=="))}
    return sorted(lines, key=str.lower)


def lock_changes(old: list[str], new: list[str]) -> list[str]:
    """What moved between two locks, one 'name: old -> new' line per package."""
    def versions(lines: list[str]) -> dict[str, str]:
        return dict(line.lower().split("==", 1) for line in lines)

    before, after = versions(old), versions(new)
    return [f"{name}: {before.get(name, '-')} -> {after.get(name, '-')}"
            for name in sorted(before.keys() | after.keys()) if before.get(name) != after.get(name)]


@nox.session(python="3.11")
def latest(session: nox.Session) -> None:
    """The newest versions pyproject.toml allows, without the lock: what moved against constraints.txt, then
    the tests (arguments go to pytest). The versions it ran on are written next to its venv; when the tests
    pass there, copying that file over constraints.txt refreshes the lock (docs/getting-started.md,
    "Refreshing the lock")."""
    install(session, "test,lint,docs", locked=False)
    freeze = session.run("python", "-m", "pip", "freeze", "--all", "--exclude-editable", silent=True) or ""
    candidate = Path(session.virtualenv.location) / "constraints.latest.txt"
    new = lock_lines(freeze)
    candidate.write_text(LOCK_HEADER + "\n".join(new) + "\n")
    old = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    moved = lock_changes(old, new)
    session.log(f"{len(moved)} packages differ from {LOCK.name}" + "".join(f"\n  {line}" for line in moved))
    session.run("pytest", *(session.posargs or ["-q", "-rfE"]))
    session.log(f"tests passed on these versions: `cp {candidate} {LOCK}` makes them the lock")


LOCK_HEADER = """\
# The lock: every package the tests passed on (CPython 3.11, Linux x86_64, CPU torch), used by nox as
# pip constraints. Refresh: `nox -s latest`; when its tests pass, copy the constraints.latest.txt it
# names over this file. Ranges for users installing the wheel stay in pyproject.toml.
"""


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site: the generated reference pages checked against the code (the CLI's parser, the
    scenario schema), then `mkdocs build --strict` into site/ (git-ignored), so a stale page or a broken
    link fails.

    The generator imports only the parser and the schema, which need the standard library alone, so ttsload
    goes in without its dependencies (no torch: seconds instead of minutes) next to the `docs` extra.
    """
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    session.install(*extra, "-c", str(LOCK))
    session.install("--no-deps", "-e", ".")
    session.run("python", "docs/gen_reference.py", "--check")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"), env={"NO_MKDOCS_2_WARNING": "1"})


# What the Kubernetes manifests' parameters are set to for the schema check (docs/machines.md, "Kubernetes").
DEPLOY_EXAMPLE = {"TTSLOAD_IMAGE": "registry.example/ttsload:abc123", "TTSLOAD_STORAGE_CLASS": "nfs-client",
                  "TTSLOAD_RUN": "r20261203", "TTSLOAD_POOL": "epyc"}


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff; mypy on the package as installed (tests/typecheck.py: strict on the modules pyproject.toml's
    [[tool.mypy.overrides]] lists) and the count of parameters typed `Any` (tests/any_params.py); then the
    deploy/ files: actionlint and the workflow schema, the Kubernetes manifests (their parameters set as
    `envsubst` would) against the Kubernetes schema, and hadolint on the Dockerfile.

    No torch and no ttsload install: mypy reads the code through a tree of links, and numpy and scipy, whose
    types the strict modules use, come from the lock.
    """
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["lint"]
    session.install(*extra, "numpy", "scipy", "-c", str(LOCK))
    session.run("ruff", "check", ".")
    session.run("python", "tests/typecheck.py")
    session.run("python", "tests/any_params.py", "--total")
    workflows = sorted(str(p) for p in (ROOT / "deploy" / "github").glob("*.yml"))
    session.run("actionlint", *workflows)
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    rendered = Path(session.create_tmp()) / "kubernetes"
    rendered.mkdir(exist_ok=True)
    for manifest in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        text = string.Template(manifest.read_text()).safe_substitute(DEPLOY_EXAMPLE)  # only TTSLOAD_* names
        (rendered / manifest.name).write_text(text)
    session.run("kubernetes-validate", "--strict", "--quiet", *sorted(str(p) for p in rendered.glob("*.yaml")))
    session.run("hadolint", str(ROOT / "deploy" / "Dockerfile"))


@nox.session(python="3.11")
def install_recipe(session: nox.Session) -> None:
    """deploy/install.sh, the container image's install steps, in this fresh venv: the image's recipe tested
    where no container engine runs. Slow (torch and the lock are installed), so never part of `tests`. torch
    comes from the PyTorch CPU index unless TORCH_INDEX_URL says otherwise (empty: pip's configured indexes)."""
    session.run("sh", str(ROOT / "deploy" / "install.sh"), str(ROOT), external=True)
    session.run("ttsload", "run", "--strategy", "naive", "--model", "vits-tiny", "--repeat", "1", "--no-history",
                "--out", str(Path(session.create_tmp()) / "smoke"))
