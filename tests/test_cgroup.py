"""A container's CPU quota and memory limit, read from fake cgroup trees (v2, v1, none), cap the machine
fingerprint's cores and memory and set the cells' thread count, as a Kubernetes pod without pinned cores needs."""

from __future__ import annotations

from pathlib import Path

import psutil

from ttsload.bench.harness import cgroup, environment
from ttsload.bench.harness.cgroup import Limits


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")


def self_file(tmp_path: Path, text: str) -> Path:
    (tmp_path / "self").write_text(text)
    return tmp_path / "self"


def test_v2_in_its_own_namespace_reads_the_root_files(tmp_path):
    root = tmp_path / "cg"
    write(root, {"cgroup.controllers": "cpu memory", "cpu.max": "200000 100000", "memory.max": str(8 * 2**30)})
    found = cgroup.limits(root, self_file(tmp_path, "0::/\n"))
    assert found == Limits(2.0, 8 * 2**30) and found.cores() == 2


def test_v2_takes_the_tightest_limit_of_the_cgroup_and_its_ancestors(tmp_path):
    root, pod = tmp_path / "cg", "kubepods.slice/kubepods-pod1.slice"
    write(root, {"cgroup.controllers": "cpu memory", f"{pod}/cpu.max": "max 100000",
                 f"{pod}/memory.max": str(6 * 2**30), f"{pod}/c1/cpu.max": "150000 100000",
                 f"{pod}/c1/memory.max": "max"})
    found = cgroup.limits(root, self_file(tmp_path, f"0::/{pod}/c1\n"))
    assert found == Limits(1.5, 6 * 2**30) and found.cores() == 2  # 1.5 CPUs: 2 threads, throttled at 1.5


def test_v2_without_limits_and_no_cgroup_at_all_leave_the_machine_as_it_is(tmp_path):
    root = tmp_path / "cg"
    write(root, {"cgroup.controllers": "cpu memory", "cpu.max": "max 100000", "memory.max": "max"})
    assert cgroup.limits(root, self_file(tmp_path, "0::/\n")) == Limits(None, None)
    assert cgroup.limits(tmp_path / "absent", tmp_path / "no-self-file") == Limits(None, None)
    assert Limits(None, None).cores() is None


def test_v1_reads_the_cfs_quota_and_the_memory_limit(tmp_path):
    root = tmp_path / "cg"
    cpu, memory = "cpu,cpuacct/docker/abc", "memory/docker/abc"
    write(root, {f"{cpu}/cpu.cfs_quota_us": "50000", f"{cpu}/cpu.cfs_period_us": "100000",
                 f"{memory}/memory.limit_in_bytes": str(2**30), "memory/memory.limit_in_bytes": "9223372036854771712"})
    found = cgroup.limits(root, self_file(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"))
    assert found == Limits(0.5, 2**30) and found.cores() == 1
    write(root, {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1", "memory/docker/abc/memory.limit_in_bytes":
                 "9223372036854771712"})  # v1's "no limit"
    assert cgroup.limits(root, self_file(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")) == \
        Limits(None, None)


def test_the_fingerprint_counts_what_the_quota_and_limit_allow(monkeypatch):
    free = environment.fingerprint()
    monkeypatch.setattr(cgroup, "limits", lambda: Limits(1.0, 2**30))
    capped = environment.fingerprint()
    assert capped["cores_logical"] == 1 and capped["memory_gb"] == 1
    assert {k: v for k, v in capped.items() if k not in ("cores_logical", "memory_gb")} == \
        {k: v for k, v in free.items() if k not in ("cores_logical", "memory_gb")}
    monkeypatch.setattr(cgroup, "limits", lambda: Limits(512.0, 2**50))  # limits above the machine change nothing
    assert environment.fingerprint() == free
    assert free["memory_gb"] == round(psutil.virtual_memory().total / 2**30)
