"""What a run was measured on: versions, CPU, cores, memory, git sha. Stored with every run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

from ttsload.bench.harness import cgroup
from ttsload.bench.regression.machines import machine_class
from ttsload.strategies import families

# CPU flags that change which kernels torch and oneDNN pick: two machines that differ in one of these
# can rank strategies differently (bf16 was 2x faster on avx512_bf16, 47 % slower with amx), so they
# belong to the machine class. Other flags do not.
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
_PACKAGES = ("torch", "coqui-tts", "coqui-tts-trainer", "transformers", "torchaudio", "torchcodec", "numpy", "psutil",
             "accelerate", "safetensors", "kokoro", "onnxruntime")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in KERNEL_FLAGS if f in present]
    except OSError:
        pass
    return []


def _usable_cores(limits: cgroup.Limits) -> int | None:
    """The cores this process may run on: all of them on an ordinary machine, fewer under `taskset` or a
    cpuset (a pinned container), which measures like a smaller machine and so is another class; and no more
    than a CPU quota pays for (a container's quota without pinned cores, bench/harness/cgroup.py)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = limits.cores()
    return min(cores, quota) if cores and quota else cores or quota


def _memory_bytes(limits: cgroup.Limits) -> int:
    """The machine's memory, or the cgroup's limit where that is smaller (a container's `memory.max`)."""
    total = psutil.virtual_memory().total
    return min(total, limits.memory_bytes) if limits.memory_bytes else total


def fingerprint() -> dict[str, Any]:
    """The machine class: what makes absolute timings comparable (CPU, cores, memory, kernel-changing ISA
    flags, and the versions of the code that runs the kernels). Shared by the gate's baseline matching and
    by sharded runs' machine identity."""
    limits = cgroup.limits()
    return {
        "cpu": _cpu_model(),
        "cores_logical": _usable_cores(limits),
        "memory_gb": round(_memory_bytes(limits) / 2**30),
        "isa": _cpu_flags(),
        "python": ".".join(platform.python_version_tuple()[:2]),
        "torch": _version("torch"),
        "coqui-tts": _version("coqui-tts"),
    }


def resolved_versions() -> dict[str, str]:
    """Every installed distribution and its version: what this environment resolved to, so two runs on
    different resolutions of the same requirements never look alike."""
    from importlib.metadata import distributions

    found = {(dist.metadata["Name"] or "").lower(): dist.version for dist in distributions()}
    return dict(sorted((name, ver) for name, ver in found.items() if name))


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def collect(machine: str | None = None) -> dict[str, Any]:
    """Everything about where a run was measured. `machine` names the host in results (default: hostname)."""
    print_ = fingerprint()
    return {
        "machine": machine or platform.node(),
        "fingerprint": print_,
        "machine_class": machine_class(print_),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_total_mb": psutil.virtual_memory().total / 2**20,
        "cgroup_limits": cgroup.limits().to_json(),  # what the fingerprint's cores and memory were capped by
        "load_average": os.getloadavg(),
        "packages": {p: _version(p) for p in _PACKAGES},
        "resolved": resolved_versions(),
        "git_sha": _git_sha(),
        "family_plugin_errors": families.plugin_errors(),  # family plugins left out of this run, and why
        "hostname": platform.node(),
    }
