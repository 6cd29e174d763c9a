"""Sessions: tests (the CI command), gate (the CI regression gate), bench (the main job), baseline,
microbench, lint.

torch is installed first and pinned, so pip takes the CPU wheel instead of a multi-GB CUDA build.
Virtualenvs are reused, and a stamp of the install inputs skips reinstalling when nothing changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

TORCH = "torch==2.13.0"
ROOT = Path(__file__).parent

def install(session: nox.Session, extras: str) -> None:
    """Install torch first, then ttsload; skip both when the stamp says nothing changed.

    Every step is an install step (`run_install` runs under `--install-only` too, where `session.run`
    is skipped), and the stamp is written only after the environment imports torch, torchaudio and
    TTS.api: `nox -s tests --install-only && nox -s tests` works, and a broken venv is never stamped.
    PyPI's torchaudio 2.11 is a CUDA build whose native extension cannot load beside CPU torch;
    `ttsload doctor --fix` removes that optional extension only when the import fails that way.
    """
    key = hashlib.sha256((TORCH + extras + (ROOT / "pyproject.toml").read_text()).encode()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".ttsload-installed"
    if stamp.is_file() and stamp.read_text() == key:
        session.log("dependencies unchanged since last install: skipping pip")
        return
    stamp.unlink(missing_ok=True)
    session.install(TORCH)
    session.install("-e", f".[{extras}]")
    session.run_install("python", "-P", "-m", "ttsload", "doctor", "--fix")  # fails unless the imports work
    stamp.write_text(key)


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The test suite on real tiny Coqui models (no mocks)."""
    install(session, "test")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """The five presets on the default `vits` model, warm cache, 3 fresh-process repetitions."""
    install(session, "test")
    session.run("ttsload", "models", "build", "vits")
    args = session.posargs or [
        "--strategy", "naive,singleton,mmap,quantized,subprocess-worker",
        "--model", "vits", "--requests", "10", "--repeat", "3", "--cache", "warm",
    ]
    if "--out" in args:
        out = Path(args[args.index("--out") + 1])
    else:
        import time

        out = ROOT / "results" / time.strftime("bench-%Y%m%d-%H%M%S")
        args = [*args, "--out", str(out)]
    session.run("ttsload", "run", *args, success_codes=[0, 1])
    session.log(f"results are in {out} (results.jsonl, summary.csv, logs/)")
    session.run("ttsload", "report", str(out))  # prints the report's path


PRESETS = "naive,singleton,mmap,quantized,subprocess-worker"
# The quick comparison run of `nox -s gate`; `nox -s baseline` runs the same with more repetitions.
GATE_RUN = ["--strategy", PRESETS, "--model", "vits-tiny,vits", "--requests", "1", "--cache", "warm"]
GATE_REPEAT, BASELINE_REPEAT = "3", "5"
BASELINE = "xeon-2cpu"  # the committed baseline of the CI machine class (baselines/README.md)


@nox.session(python="3.11")
def gate(session: nox.Session) -> None:
    """Quick run of the five presets on vits-tiny and vits, gated against the committed baseline.

    Extra arguments go to `ttsload gate` (e.g. `-- --fail cold_start_s:median:+20%`). A planted
    regression: `TTSLOAD_TEST_STRATEGIES=1 TTSLOAD_TEST_PLANT=slow-eager nox -s gate`.
    """
    install(session, "test")
    session.run("ttsload", "models", "build", "vits-tiny", "vits")
    out = ROOT / "results" / time.strftime("gate-%Y%m%d-%H%M%S")
    session.run("ttsload", "run", *GATE_RUN, "--repeat", GATE_REPEAT, "--out", str(out))
    baseline = os.environ.get("TTSLOAD_BASELINE", str(ROOT / "baselines" / f"{BASELINE}.json"))
    session.run("ttsload", "gate", "--baseline", baseline, "--current", str(out), "--json", str(out / "gate.json"),
                *session.posargs)


@nox.session(python="3.11")
def baseline(session: nox.Session) -> None:
    """Re-measure the gate's baseline (same run as `gate`, more repetitions) into baselines/NAME.json."""
    install(session, "test")
    session.run("ttsload", "models", "build", "vits-tiny", "vits")
    out = ROOT / "results" / time.strftime("baseline-%Y%m%d-%H%M%S")
    session.run("ttsload", "run", *GATE_RUN, "--repeat", BASELINE_REPEAT, "--out", str(out))
    session.run("ttsload", "baseline", "save", str(out), *(session.posargs or [BASELINE]),
                "--dir", str(ROOT / "baselines"))


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


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
