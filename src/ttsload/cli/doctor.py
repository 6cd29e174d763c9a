"""`ttsload doctor [--fix]`: check every native piece the environment pulls in, and repair what is known to break.

Each check runs in a fresh interpreter (a failed native load cannot be retried in the same one):
- imports: torch, torchaudio and Coqui's `TTS.api`. PyPI's torchaudio 2.11 is a CUDA build whose optional
  native extension cannot load beside CPU torch; `--fix` removes that extension (torchaudio then runs in
  its pure-Python mode, which is all Coqui needs).
- audio I/O: `torchaudio.save` and `torchaudio.load` of a short wav. Since torchaudio 2.9 both go through
  torchcodec, whose libraries need FFmpeg 4-7's shared libraries and must be a CPU build: PyPI's torchcodec
  0.14+ wheels link libtorch_cuda.so. `--fix` installs a CPU build (`torchcodec<0.14`) with pip, and FFmpeg's
  libraries with apt-get when run as root on a Debian-like system.
- onnxruntime: the ONNX family's runtime imports and lists its providers.
nox runs `doctor --fix` as an install step, so a venv that fails any check is never stamped as installed.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from ttsload.bench.exitcodes import ExitCode

CPU_TORCHCODEC = "torchcodec>=0.8,<0.14"  # pyproject.toml's range: the newest CPU build on PyPI is 0.13
CUDA_LIBRARIES = ("libtorch_cuda", "libc10_cuda", "libnvrtc", "libcudart", "libnvjpeg")

_AUDIO_IO = """
import os, tempfile, torch, torchaudio
path = os.path.join(tempfile.mkdtemp(), "doctor.wav")
wave = torch.linspace(-0.5, 0.5, 1600).reshape(1, -1)
torchaudio.save(path, wave, 16000)
back, rate = torchaudio.load(path)
assert rate == 16000 and tuple(back.shape) == (1, 1600), (rate, tuple(back.shape))
"""

# Which library each of torchcodec's FFmpeg-specific cores fails to find (ctypes names the first missing one).
_TORCHCODEC_PROBE = """
import ctypes, glob, importlib.util, json, os, torch
spec = importlib.util.find_spec("torchcodec")
folder = list(spec.submodule_search_locations)[0]
missing = {}
for path in sorted(glob.glob(os.path.join(folder, "libtorchcodec_core*.so"))):
    try:
        ctypes.CDLL(path)
        missing[os.path.basename(path)] = None
    except OSError as exc:
        missing[os.path.basename(path)] = str(exc).split(":")[0]
print(json.dumps(missing))
"""


@dataclass(frozen=True)
class Check:
    name: str
    code: str
    what: str


CHECKS = (
    Check("imports", "import torch, torchaudio, TTS.api", "import torch, torchaudio, TTS.api"),
    Check("audio-io", _AUDIO_IO, "torchaudio.save + torchaudio.load of a wav (torchcodec, FFmpeg)"),
    Check("onnxruntime", "import onnxruntime; assert onnxruntime.get_available_providers()",
          "import onnxruntime"),
)


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)


def problem_of(check: Check) -> str | None:
    """None when the check passes in a fresh interpreter, else the last line of what it printed."""
    done = _fresh(check.code)
    if done.returncode == 0:
        return None
    lines = [line for line in done.stderr.strip().splitlines() if line.strip() and not line.startswith("[")]
    errors = [line for line in lines if "Error" in line]
    return (errors or lines or [f"exit code {done.returncode}"])[-1]


def remove_torchaudio_extension() -> list[str]:
    """Delete torchaudio's native extension files; return what was removed."""
    spec = importlib.util.find_spec("torchaudio")
    if spec is None or spec.origin is None:
        return []
    removed = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), "lib", "*.so")))
    for path in removed:
        os.remove(path)
    return removed


def torchcodec_diagnosis() -> str:
    """Why torchcodec's libraries do not load: 'cuda-build', 'no-ffmpeg', 'absent' or 'unknown'."""
    if importlib.util.find_spec("torchcodec") is None:
        return "absent"
    done = _fresh(_TORCHCODEC_PROBE)
    try:
        missing: dict[str, str | None] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return "unknown"
    if any(value is None for value in missing.values()):
        return "unknown"  # one core loads: the failure lies elsewhere
    reasons = [value or "" for value in missing.values()]
    if any(lib in reason for reason in reasons for lib in CUDA_LIBRARIES):
        return "cuda-build"
    if reasons and all(reason.startswith(("libav", "libsw")) for reason in reasons):
        return "no-ffmpeg"
    return "unknown"


def _installed(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def fix_audio_io(diagnosis: str) -> str | None:
    """Repair the known audio I/O failures; return what was done, or None when nothing applies."""
    if diagnosis in ("cuda-build", "absent"):
        was = _installed("torchcodec")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", CPU_TORCHCODEC], check=False)
        return f"torchcodec {was} -> {_installed('torchcodec')} (a CPU build: {CPU_TORCHCODEC})"
    if diagnosis == "no-ffmpeg" and os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                 "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "ffmpeg"], check=False,
                       **quiet)  # type: ignore[call-overload]
        return "FFmpeg's shared libraries installed with apt-get (Debian's ffmpeg package)"
    return None


def advice(check: Check, problem: str) -> str:
    """What a person should do about a failed check, in a few words."""
    if check.name == "imports" and "torchaudio" in problem:
        return "`ttsload doctor --fix` removes torchaudio's CUDA-only extension"
    if check.name == "audio-io":
        diagnosis = torchcodec_diagnosis()
        if diagnosis == "cuda-build":
            return f"torchcodec {_installed('torchcodec')} is a CUDA build: pip install '{CPU_TORCHCODEC}'"
        if diagnosis == "no-ffmpeg":
            return "torchcodec needs FFmpeg 4-7's shared libraries: e.g. `apt-get install ffmpeg`"
    return "see the error above"


def try_fix(check: Check, problem: str) -> str | None:
    """Apply the known repair for `check`'s failure; what was done, or None."""
    if check.name == "imports" and "torchaudio" in problem and ("Could not load" in problem or "OSError" in problem):
        removed = remove_torchaudio_extension()
        return f"torchaudio: removed its CUDA-only native extension ({len(removed)} files); pure-Python mode"
    if check.name == "audio-io":
        return fix_audio_io(torchcodec_diagnosis())
    return None


def run(fix: bool) -> int:
    broken = 0
    for check in CHECKS:
        problem = problem_of(check)
        if problem is not None and fix and (done := try_fix(check, problem)):
            print(f"fixed: {done}")
            problem = problem_of(check)
        if problem is None:
            print(f"ok: {check.what}")
            continue
        broken += 1
        print(f"ttsload doctor: {check.what} fails: {problem} ({advice(check, problem)})", file=sys.stderr)
    if not broken:
        print(f"environment ok: {sys.executable}")
    return ExitCode.FAILED if broken else ExitCode.OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="check torch, torchaudio, Coqui, audio I/O (torchcodec, FFmpeg) and "
                                           "onnxruntime; --fix repairs the known failures")
    doctor.add_argument("--fix", action="store_true",
                        help="remove torchaudio's CUDA-only extension, replace a CUDA build of torchcodec with a CPU "
                             "build, and install FFmpeg's libraries with apt-get (as root) when they are missing")
