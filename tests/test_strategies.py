"""Every strategy loads a real Coqui VITS and serves it; fp32 outputs are bit-identical."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ttsload.bench.scenario.corpus import texts
from ttsload.strategies.base import StrategyError, null_hook, request_seed
from ttsload.strategies.registry import PRESETS, UnknownStrategy, make_loader, resolve

FP32 = ["naive", "singleton", "mmap", "subprocess-worker", "resident+mmap-meta", "resident+safetensors",
        "worker+mmap"]
TEXTS = texts(3, seed=7)
BF16_MIN_SNR_DB = 20.0  # measured ~47 dB on vits-tiny; 20 dB still means audibly the same utterance


class Recorder:
    """A hook that keeps every event, as the harness would."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, event, t=None, **fields):
        with self._lock:
            self.events.append((event, fields))

    def count(self, name: str) -> int:
        return sum(1 for e, _ in self.events if e == name)


def serve_all(strategy: str, files, hook=null_hook) -> list[np.ndarray]:
    with resolve(strategy).build(files, hook) as topology:
        return [topology.synthesize(text, request_seed(text)).wav for text in TEXTS]


@pytest.fixture(scope="module")
def reference(tiny) -> list[np.ndarray]:
    return serve_all("singleton", tiny)


@pytest.mark.integration
@pytest.mark.parametrize("strategy", FP32)
def test_fp32_strategies_give_bit_identical_audio(strategy, tiny, reference):
    audio = serve_all(strategy, tiny)
    for got, want in zip(audio, reference, strict=True):
        assert got.dtype == np.float32 and got.size > 1000
        assert np.array_equal(got, want)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    n = min(len(reference), len(other))
    noise = np.sum((reference[:n] - other[:n]) ** 2)
    return float(10 * np.log10(np.sum(reference[:n] ** 2) / max(noise, 1e-30)))


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["quantized", "resident+bf16"])
def test_reduced_precision_stays_close_to_fp32(strategy, tiny, reference):
    audio = serve_all(strategy, tiny)
    for got, want in zip(audio, reference, strict=True):
        assert abs(len(got) - len(want)) <= 0.02 * len(want)
        assert snr_db(want, got) >= BF16_MIN_SNR_DB
    assert not all(np.array_equal(g, w) for g, w in zip(audio, reference, strict=True))  # it really ran in bf16


@pytest.mark.integration
def test_quantization_reports_what_it_converted(tiny):
    hook = Recorder()
    model = make_loader("int8-bf16").load(tiny, hook)
    assert model.info["int8_fraction"] == 0.0  # VITS has no Linear/LSTM: the no-op is visible
    assert model.info["bf16_fraction"] == pytest.approx(1.0)
    assert dict(hook.events)["weights_done"]["int8_fraction"] == 0.0


@pytest.mark.integration
def test_naive_loads_once_per_request_and_singleton_once(tiny):
    naive, singleton = Recorder(), Recorder()
    serve_all("naive", tiny, naive)
    serve_all("singleton", tiny, singleton)
    assert naive.count("weights_done") == len(TEXTS)
    assert singleton.count("weights_done") == 1


@pytest.mark.integration
def test_singleton_double_checked_lock_loads_once_under_concurrency(tiny):
    hook = Recorder()
    topology = resolve("resident+eager").build(tiny, hook)
    barrier = threading.Barrier(6)

    def ask():
        barrier.wait()
        topology.get()

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hook.count("weights_done") == 1
    assert len({id(topology.get()) for _ in range(3)}) == 1


@pytest.mark.integration
def test_every_loader_emits_the_phase_events_in_order(tiny):
    for name in ("eager", "mmap", "mmap-meta", "safetensors", "bf16", "int8", "int8-bf16"):
        hook = Recorder()
        make_loader(name).load(tiny, hook)
        assert [e for e, _ in hook.events] == ["load_start", "verify_done", "construct_done", "weights_done"]


@pytest.mark.integration
def test_worker_serves_many_requests_in_one_process(tiny):
    hook = Recorder()
    with resolve("subprocess-worker").build(tiny, hook) as topology:
        for text in TEXTS * 3:
            topology.synthesize(text, request_seed(text))
        worker_pid = dict(hook.events)["worker_spawned"]["worker_pid"]
        assert topology._host.pid == worker_pid
    assert hook.count("weights_done") == 1
    assert {f["pid"] for e, f in hook.events if e in ("imports_done", "weights_done")} == {worker_pid}


@pytest.mark.integration
def test_worker_caller_never_imports_torch(tiny):
    code = (
        "import sys; from ttsload.bench.models import resolve\n"
        "from ttsload.strategies.registry import resolve as strategy\n"
        f"t = strategy('subprocess-worker').build(resolve({str(tiny.checkpoint.parent)!r}), lambda *a, **k: None)\n"
        "t.start(); t.synthesize('Hello there.', 1); t.close()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.integration
def test_a_dead_worker_is_reported(tiny):
    import os
    import signal

    topology = resolve("subprocess-worker").build(tiny, null_hook)
    topology.start()
    os.kill(topology._host.pid, signal.SIGKILL)
    topology._host.process.join()
    with pytest.raises(StrategyError, match="died"):
        topology.synthesize("Hello there.", 1)
    topology.close()


@pytest.mark.integration
def test_sha256_mismatch_is_refused_before_loading(tiny_copy: Path):
    from ttsload.bench.models import resolve as resolve_model

    checkpoint = tiny_copy / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    files = resolve_model(str(tiny_copy))
    for loader in ("eager", "mmap"):
        with pytest.raises(StrategyError, match=r"sha256 mismatch for .*model_file\.pth"):
            make_loader(loader).load(files, null_hook)


@pytest.mark.integration
def test_corrupt_checkpoint_without_manifest_gives_one_line(tiny_copy: Path):
    from ttsload.bench.models import resolve as resolve_model

    (tiny_copy / "manifest.json").unlink()
    checkpoint = tiny_copy / "model_file.pth"
    checkpoint.write_bytes(checkpoint.read_bytes()[:4096])  # truncated before first sight
    files = resolve_model(str(tiny_copy))
    with pytest.raises(StrategyError, match=r"model_file\.pth is not a complete torch checkpoint") as info:
        make_loader("eager").load(files, null_hook)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["fast", "worker+turbo", "worker+resident", "mmap+eager+worker"])
def test_unknown_strategy_names_the_choices(name):
    with pytest.raises(UnknownStrategy, match="unknown strategy") as info:
        resolve(name)
    assert all(preset in str(info.value) for preset in PRESETS)


def test_combinations_resolve_in_either_order():
    assert resolve("worker+mmap") == resolve("mmap+worker").__class__("worker+mmap", "worker", "mmap")
    assert resolve("per-request+eager").topology == "per_request"



@pytest.mark.integration
def test_prefork_workers_serve_from_the_parents_model(tiny):
    """Forked from a fresh process, as in a real cell (forking after torch ran would hang libgomp)."""
    code = (
        "from ttsload.bench.models import resolve; from ttsload.strategies.registry import resolve as strategy\n"
        "events = []\n"
        "hook = lambda e, t=None, **f: events.append((e, f))\n"
        f"t = strategy('prefork+mmap').build(resolve({str(tiny.checkpoint.parent)!r}), hook, threads=1, workers=3)\n"
        "t.start(); [t.synthesize('Hello there, friend.', 1) for _ in range(4)]; trims = t.trim(); t.close()\n"
        "print(sum(e == 'weights_done' for e, _ in events), len({f['worker_pid'] for e, f in events\n"
        "      if e == 'worker_forked'}), isinstance(trims, bool))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "3", "True"]  # loaded once in the parent, three forked workers
