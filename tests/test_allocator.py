"""Allocator and runtime options: parsed with one-line errors, set in the cell's environment before it
starts, and present in every worker it spawns or forks (environment and, for jemalloc, the mapped library)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttsload.bench.harness.runner import _cell_environment
from ttsload.strategies import allocator, base
from ttsload.strategies.registry import UnknownStrategy, resolve

ALL = "arena=2:trim=3:onednn_cache=16:alloc=jemalloc"
needs_jemalloc = pytest.mark.skipif(not allocator.jemalloc_path().is_file(),
                                    reason=f"libjemalloc2 not installed ({allocator.JEMALLOC_INSTALL})")


def test_bad_values_and_a_missing_jemalloc_are_one_line_errors(monkeypatch):
    with pytest.raises(UnknownStrategy, match="arena='0': must be 1 or more"):
        resolve("singleton:arena=0")
    with pytest.raises(UnknownStrategy, match="allocators: glibc, jemalloc"):
        resolve("singleton:alloc=tcmalloc")
    monkeypatch.setenv("TTSLOAD_JEMALLOC", "/nonexistent/libjemalloc.so.2")
    with pytest.raises(UnknownStrategy) as caught:
        resolve("prefork+mmap:alloc=jemalloc")
    message = str(caught.value)
    assert "\n" not in message and "jemalloc is not installed" in message
    assert "apt-get install -y libjemalloc2" in message


@needs_jemalloc
def test_the_cell_environment_carries_every_option():
    assert _cell_environment(resolve("singleton")) is None  # no options: the cell inherits the runner's environment
    env = _cell_environment(resolve(f"prefork+mmap:{ALL}"))
    assert env["MALLOC_ARENA_MAX"] == "2" and env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "16"
    assert env[allocator.TRIM_EVERY] == "3" and str(allocator.jemalloc_path()) in env["LD_PRELOAD"].split()


def test_the_stream_option_is_checked_and_travels_in_the_cell_environment():
    with pytest.raises(UnknownStrategy, match="stream='whole': expected one of native, sentence, none"):
        resolve("singleton:stream=whole")
    assert _cell_environment(resolve("singleton:stream=none"))["TTSLOAD_STREAM"] == "none"


def test_trim_every_n_requests_in_the_serving_process(monkeypatch):
    calls = []
    monkeypatch.setattr(base, "malloc_trim", lambda: calls.append(1) or True)
    monkeypatch.setattr(base, "_served", base._Served())  # this process's count starts now
    monkeypatch.setenv(allocator.TRIM_EVERY, "3")
    done = [base.after_request() for _ in range(7)]
    assert done == [False, False, True, False, False, True, False] and len(calls) == 2
    monkeypatch.delenv(allocator.TRIM_EVERY)
    assert base.after_request() is False


WORKERS = """
import json, sys
from pathlib import Path
from ttsload.strategies.allocator import allocator_of
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve
files = ModelFiles.from_json(json.loads(sys.argv[1]))
found = {}
for name in ('zygote+mmap', 'worker+mmap'):  # a forked worker, then a spawned one
    pids = []
    hook = lambda e, t=None, **f: pids.append(f['worker_pid']) if e in ('worker_forked', 'worker_spawned') else None
    with resolve(name).build(files, hook, threads=1) as topology:
        topology.synthesize('Hello there.', 1)
        environ = dict(v.split('=', 1) for v in Path(f'/proc/{pids[0]}/environ').read_text().split('\\0') if '=' in v)
        found[name] = {'env': environ, 'allocator': allocator_of(pids[0])}
found['self'] = allocator_of()
from ttsload.strategies.base import malloc_trim
rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
held = [bytearray(1 << 16) for _ in range(4000)]; del held  # 250 MiB freed, kept by jemalloc
before = rss(); malloc_trim(); found['purged'] = before - rss()
print(json.dumps(found))
"""


@pytest.mark.integration
@needs_jemalloc
def test_options_reach_forked_and_spawned_workers(tiny):
    env = _cell_environment(resolve(f"zygote+mmap:{ALL}"))
    done = subprocess.run([sys.executable, "-c", WORKERS, json.dumps(tiny.to_json())], env=env,
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["self"] == "jemalloc"
    assert found["purged"] > 16 * 2**20  # a trim purges jemalloc's arenas too (glibc's malloc_trim would not)
    for name in ("zygote+mmap", "worker+mmap"):
        worker = found[name]
        assert worker["allocator"] == "jemalloc", name  # the library is mapped in the worker, not only named
        for key in ("MALLOC_ARENA_MAX", "ONEDNN_PRIMITIVE_CACHE_CAPACITY", allocator.TRIM_EVERY, "LD_PRELOAD"):
            assert worker["env"][key] == env[key], (name, key)
