"""`ttsload doctor [--fix]`: check that the environment can load a Coqui model, and repair what is known to break.

PyPI's torchaudio 2.11 is a CUDA build: beside the CPU torch wheel its native extension fails to
load (`OSError: Could not load this library: .../_torchaudio.abi3.so`), and `import TTS.api` with
it. torchaudio treats that extension as optional, so removing it leaves the pure-Python mode,
which is all Coqui needs. `--fix` does that, only when the import fails that way. Run as an
install step (nox runs it with `run_install`, so `--install-only` repairs the venv too).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import subprocess
import sys

EXIT_OK, EXIT_BROKEN = 0, 1
CHECK = "import torch, torchaudio, TTS.api"


def _import_error() -> str | None:
    """Try the imports in a fresh interpreter (a failed native load cannot be retried in this one)."""
    done = subprocess.run([sys.executable, "-P", "-c", CHECK], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def remove_torchaudio_extension() -> list[str]:
    """Delete torchaudio's native extension files; return what was removed."""
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        return []
    removed = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "lib", "*.so")))
    for path in removed:
        os.remove(path)
    return removed


def run(fix: bool) -> int:
    problem = _import_error()
    if problem is None:
        print(f"ok: {CHECK} works in {sys.executable}")
        return EXIT_OK
    if fix and "torchaudio" in problem and ("Could not load" in problem or "OSError" in problem):
        removed = remove_torchaudio_extension()
        print(f"torchaudio: removed its CUDA-only native extension ({len(removed)} files); pure-Python mode")
        problem = _import_error()
        if problem is None:
            print(f"ok: {CHECK} works in {sys.executable}")
            return EXIT_OK
    hint = "" if fix else " (`ttsload doctor --fix` repairs the known torchaudio CUDA-build case)"
    print(f"ttsload doctor: {CHECK} fails: {problem}{hint}", file=sys.stderr)
    return EXIT_BROKEN


def add_parser(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check that torch, torchaudio and Coqui import; --fix repairs "
                                           "the known torchaudio CUDA-build failure")
    doctor.add_argument("--fix", action="store_true", help="remove torchaudio's CUDA-only native extension "
                                                            "when it is what breaks the imports")
