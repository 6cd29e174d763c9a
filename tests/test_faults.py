"""Faults, on vits-tiny: the reliability options (retry, fallback, liveness) against real faults, the pool drills
of the faults scenario, and the harness's own faults (torn results, unwritable folder, resume with other options)."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.cell.faults import private_copy
from ttsload.bench.results import ResultStore, load_records
from ttsload.strategies import reliability
from ttsload.strategies.base import ModelFiles, StrategyError, sha256_of
from ttsload.strategies.registry import UnknownStrategy, make_loader, resolve
from ttsload.strategies.topologies import PerRequest, Resident

TEXT = "A short sentence to speak."


class Events(list):
    """A hook that keeps every event: (name, fields)."""

    def __call__(self, event: str, t: float | None = None, **fields) -> None:
        self.append((event, fields))

    def named(self, name: str) -> list[dict]:
        return [fields for event, fields in self if event == name]


@pytest.fixture
def copy(tiny: ModelFiles, tmp_path: Path) -> ModelFiles:
    files, _ = private_copy(tiny)
    yield files
    import shutil

    shutil.rmtree(files.checkpoint.parent, ignore_errors=True)


def test_options_parse_and_check():
    spec = resolve("naive:retry=3:backoff=0.5:fallback=mmap:liveness=2")
    assert spec.option_map == {"retry": 3, "backoff": 0.5, "fallback": "mmap", "liveness": 2.0}
    for bad, said in (("singleton:retry=0", "retry='0'"), ("singleton:fallback=nope", "not a loader"),
                      ("singleton:liveness=-1", "liveness='-1'")):
        with pytest.raises(UnknownStrategy, match=said):
            resolve(bad)
    assert reliability.claims(spec.option_map, "sigstop") is None
    assert "liveness=" in reliability.claims({}, "sigstop")


@pytest.mark.integration
def test_retry_recovers_from_a_checkpoint_that_is_briefly_absent(copy):
    """A real transient fault: the file is renamed away and put back by another thread 0.3 s later."""
    hidden = copy.checkpoint.with_name("hidden.pth")
    os.replace(copy.checkpoint, hidden)
    threading.Timer(0.3, os.replace, (hidden, copy.checkpoint)).start()
    events = Events()
    loader = reliability.wrap(make_loader("eager"), {"retry": 4, "backoff": 0.2})
    model = loader.load(copy, events)
    assert model.synthesize(TEXT, 1).seconds > 0
    retries = events.named("load_retry")
    assert retries and "missing" in retries[0]["reason"] and retries[0]["wait_s"] == 0.2
    recovered = events.named("load_recovered")[0]
    assert recovered["attempts"] == len(retries) + 1 and recovered["recovery_s"] > 0


@pytest.mark.integration
def test_retry_gives_up_after_the_last_try_listing_every_attempt(copy):
    copy.checkpoint.unlink()
    loader = reliability.wrap(make_loader("mmap"), {"retry": 3, "backoff": 0.01})
    with pytest.raises(StrategyError) as info:
        loader.load(copy, Events())
    message = str(info.value)
    assert "\n" not in message and "failed 3 times, giving up" in message
    assert all(f"#{n}: model file missing" in message for n in (1, 2, 3))


@pytest.mark.integration
def test_fallback_under_a_real_address_space_limit(tiny):
    """RLIMIT_AS in a child: the heavy load's allocation fails in-process, the fallback loader serves."""
    script = f"""
import os, resource, json
os.environ["TTSLOAD_TEST_STRATEGIES"] = "1"
os.environ["TTSLOAD_TEST_HOG_MB"] = "2048"
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve
import torch
files = ModelFiles.from_json(json.loads({json.dumps(json.dumps(tiny.to_json()))}))
size = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (size + 1024 * 2**20, resource.RLIM_INFINITY))  # 1 GiB over what is mapped
events = []
topology = resolve("resident+hog-eager:fallback=mmap").build(files, lambda e, t=None, **f: events.append((e, f)))
topology.start()
assert topology.synthesize("Hello there.", 1).seconds > 0
print(json.dumps([f for e, f in events if e == "load_fallback"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    fallbacks = json.loads(done.stdout.splitlines()[-1])
    assert len(fallbacks) == 1 and fallbacks[0]["to"] == "mmap" and fallbacks[0]["during"] == "load"
    assert "MemoryError" in fallbacks[0]["reason"] or "memory" in fallbacks[0]["reason"].lower()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_out_of_memory_falls_back_to_cpu():
    """A real CUDA OOM (an allocation of 4 TiB on the GPU); the same call then runs on the CPU."""
    import torch

    module = torch.nn.Linear(4, 4).cuda()
    devices, events = [], Events()

    def call():
        device = next(module.parameters()).device
        devices.append(device.type)
        scratch = torch.empty(2**40 if device.type == "cuda" else 4, device=device)  # float32: 4 TiB on CUDA
        return module(torch.ones(4, device=device)) + scratch[:4].zero_()

    assert reliability.cuda_to_cpu(module, call, events).device.type == "cpu"
    assert devices == ["cuda", "cpu"] and events.named("load_fallback")[0]["to"] == "cpu"


@pytest.mark.integration
@pytest.mark.parametrize("damage", ["replace", "delete"])
def test_checkpoint_changed_mid_run(copy, damage):
    """Per-request loading refuses the new file; a resident model keeps serving the verified copy and says so."""
    naive_events, resident_events = Events(), Events()
    naive = PerRequest(make_loader("eager"), copy, naive_events)
    resident = Resident(make_loader("eager"), copy, resident_events)
    for topology in (naive, resident):
        topology.start()
        topology.synthesize(TEXT, 1)
    if damage == "replace":
        data = bytearray(copy.checkpoint.read_bytes())
        data[-1] ^= 0xFF
        copy.checkpoint.with_name("new").write_bytes(bytes(data))
        os.replace(copy.checkpoint.with_name("new"), copy.checkpoint)
    else:
        copy.checkpoint.unlink()
    with pytest.raises(StrategyError, match="sha256 mismatch" if damage == "replace" else "model file missing"):
        naive.synthesize(TEXT, 1)
    assert resident.synthesize(TEXT, 1).seconds > 0
    said = resident_events.named("checkpoint_changed")
    assert len(said) == 1 and said[0]["exists"] == (damage == "replace") and "verified" in said[0]["serving"]


def _script(tmp_path: Path, name: str, drills: list[str], extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'summary = "drills"\nkind = "pool"\nrepeat = 1\ntimeout_s = 240\n[workers]\ncounts = [1]\n'
                    f'threads = 1\n[texts]\ndistinct = 3\nmin_chars = 20\nmax_chars = 50\n[faults]\n'
                    f'drills = {json.dumps(drills)}\nafter = 1\n{extra}[[phase]]\ndo = "requests"\ncount = 4\n')
    return path


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as handle:
        return {row["fault"]: row for row in csv.DictReader(handle)}


@pytest.mark.integration
def test_worker_drills_with_liveness(tiny, tmp_path):
    """SIGKILL mid-request: the worker is replaced and its request retried; SIGSTOP: the hang is found within
    the liveness setting (plus one poll), the worker replaced, no request lost; a replaced checkpoint: the resident
    workers keep serving the verified copy, and the model home's file is untouched."""
    before = sha256_of(tiny.checkpoint)
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", str(_script(tmp_path, "w", ["sigkill", "sigstop", "replace_checkpoint"])),
                   "--strategy", "singleton:liveness=2", "--model", "vits-tiny", "--out", str(out), "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out)
    for fault in ("sigkill", "sigstop"):
        row = rows[fault]
        assert (row["survived"], row["requests_failed"], row["requests_retried"]) == ("yes", "0", "1"), row
        assert float(row["recovery_s"]) > 0 and row["worker_deaths"] == "1"
    # found within the stated time: the liveness setting after its last heartbeat (sent every 0.5 s), plus one poll
    assert rows["sigstop"]["hung_workers"] == "1" and 0 < float(rows["sigstop"]["hang_detected_s"]) <= 2 + 1.5
    replaced = rows["replace_checkpoint"]
    assert replaced["survived"] == "yes" and "kept serving" in replaced["fault_note"]
    assert sha256_of(tiny.checkpoint) == before


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or not Path("/sys/fs/cgroup/memory/cgroup.procs").exists(),
                    reason="needs a writable cgroup v1 memory controller (root)")
def test_oom_kill_under_a_cgroup_limit_falls_back(tiny, tmp_path):
    """A real cgroup limit on the cell's tree: the kernel OOM-kills the heavy worker while it loads, the pool
    restarts it with the fallback loader, and every request is served."""
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", str(_script(tmp_path, "o", ["oom"], "memory_limit_mb = 700\n")),
                   "--strategy", "resident+hog-eager:fallback=mmap", "--model", "vits-tiny", "--out", str(out),
                   "--no-history", env={"TTSLOAD_TEST_STRATEGIES": "1", "TTSLOAD_TEST_HOG_MB": "600"})
    assert done.returncode == 0, done.stderr[-3000:]
    row = _rows(out)["oom"]
    assert (row["survived"], row["oom_kills"], row["load_fallbacks"], row["fallback_to"]) == ("yes", "1", "1", "mmap")
    assert float(row["recovery_s"]) > 0 and float(row["pss_total_mb"]) > 0
    assert not list(Path("/sys/fs/cgroup/memory/ttsload").glob("*/"))  # the cell's group was removed


@pytest.mark.integration
def test_resume_refuses_other_measuring_options(tmp_path):
    out = tmp_path / "out"
    ResultStore(out).write_run("r0", {}, {"requests": 2, "cache": "warm", "interval": 0.05})
    done = ttsload("run", "--strategy", "mmap", "--model", "vits-tiny", "--requests", "3", "--resume", str(out))
    assert done.returncode != 0 and "--requests differs: the run there used 2, this command 3" in done.stderr


def _child_pids(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.integration
def test_harness_killed_then_folder_unwritable_then_resumed(tiny, tmp_path):
    """SIGKILL of `ttsload run` itself (a torn last line added, as a kill mid-write leaves): report and resume
    read the folder. A resume under RLIMIT_FSIZE stops cleanly with the finished cells on disk; a last resume
    completes the run."""
    out = tmp_path / "out"
    args = ["--strategy", "mmap", "--model", "vits-tiny", "--requests", "1", "--repeat", "2", "--interval", "0.5",
            "--no-history"]
    harness = subprocess.Popen([sys.executable, "-P", "-m", "ttsload", "run", *args, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not load_records(out, "cell") and time.monotonic() < deadline:
        time.sleep(0.2)
    cells = _child_pids(harness.pid)
    harness.send_signal(signal.SIGKILL)
    harness.wait()
    for pid in cells:  # the cell runs in its own session: the orphan goes too
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    finished = len(load_records(out, "cell"))
    assert finished == 1
    with open(out / "results.jsonl", "a") as handle:
        handle.write('{"schema": 1, "type": "cell", "strategy": "mm')  # torn
    assert ttsload("report", str(out)).returncode == 0

    text = (out / "results.jsonl").read_text()
    limit = len(text.encode()) + len(text.splitlines()[0]) + 1024  # room for one more run record, not for a cell

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    stopped = subprocess.run([sys.executable, "-P", "-m", "ttsload", "run", *args, "--resume", str(out)],
                             capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert stopped.returncode == 3, stopped.stderr[-2000:]
    assert "cannot write results" in stopped.stdout + stopped.stderr
    assert len(load_records(out, "cell")) == finished  # what finished before is still there

    done = ttsload("run", *args, "--resume", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = load_records(out, "cell")
    assert sorted(r["repeat"] for r in rows if r["status"] == "ok") == [0, 1]
    assert len(load_records(out, "run")) == 3  # every run record readable after the torn lines
