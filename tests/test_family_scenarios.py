"""The built-in scenarios on the families beyond Coqui: pools, scale-out and http on an ONNX voice,
prefork of a Kokoro model, and a switch between a Kokoro and an ONNX model through one LRU (each
model loaded by its own family's loader for the same strategy name)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import ttsload
from ttsload.bench.models import build

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child


def rows(out: Path) -> dict[str, dict[str, str]]:
    return {r["scenario"]: r for r in csv.DictReader((out / "summary.csv").open())}


def records(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "results.jsonl").open()) if r.get("type") == kind]


@pytest.fixture(scope="module")
def models(ttsload_home: Path) -> None:
    build("kokoro-tiny")
    build("vits-tiny-onnx")


def test_onnx_voice_through_workers_burst_and_http(models, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", "workers,burst,http", "--strategy", "mmap", "--model", "vits-tiny-onnx",
                   "--repeat", "1", "--requests", "3", "--out", str(out), "--no-history", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = rows(out)
    assert set(found) == {"workers@n1", "workers@n2", "workers@n4", "burst@n1", "http@n2-no-preload",
                          "http@n2-preload"}
    assert all(r["status"] == "ok" for r in found.values()), {k: r["reason"] for k, r in found.items()}
    assert {r["family"] for r in found.values()} == {"onnx"}
    digests = {r["output_digest"] for k, r in found.items() if k.startswith("workers@")}
    assert len(digests) == 1  # one voice, one loader: the pool size never changes the audio


def test_kokoro_prefork_pool_shares_and_agrees(models, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", "workers", "--strategy", "prefork+mmap", "--model", "kokoro-tiny",
                   "--repeat", "1", "--requests", "2", "--threads", "1", "--out", str(out), "--no-history",
                   timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = rows(out)
    assert all(r["status"] == "ok" for r in found.values()), {k: r["reason"] for k, r in found.items()}
    assert len({r["output_digest"] for r in found.values()}) == 1


def test_switch_between_families_through_one_lru(models, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = ttsload("run", "--scenario", "switch", "--strategy", "mmap", "--model", "kokoro-tiny,vits-tiny-onnx",
                   "--repeat", "1", "--requests", "4", "--out", str(out), "--no-history", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = rows(out)
    assert set(found) == {"switch@k1", "switch@k2"}
    assert all(r["status"] == "ok" for r in found.values()), {k: r["reason"] for k, r in found.items()}
    assert (found["switch@k2"]["loads"], found["switch@k2"]["evictions"]) == ("2", "0")
    by_model: dict[str, set[str]] = {}
    for request in records(out, "request"):
        by_model.setdefault(request["model"], set()).add(request["audio_sha256"])
    assert by_model.keys() == {"kokoro-tiny", "vits-tiny-onnx"}
    assert not by_model["kokoro-tiny"] & by_model["vits-tiny-onnx"]
