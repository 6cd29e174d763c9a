"""The parent -> cell message: what the runner builds is what the cell reads, and a malformed one fails as
one SpecError naming the field (the cell reports it as its one-line failure reason)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ttsload.bench.cellspec import CellSpec, LimitProbe, SpecError, read_limits
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import Phase, Plan
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import StrategySpec, resolve


def files(name: str = "m") -> ModelFiles:
    return ModelFiles(name, Path(f"/m/{name}/config.json"), Path(f"/m/{name}/model.pth"), {"model.pth": "ab" * 32},
                      family="coqui")


def full_spec() -> CellSpec:
    plan = Plan(kind="http", phases=(Phase("requests", count=3, concurrency=2, label="c2"),), workers=2, threads=1,
                preload=True, http_limits=HttpLimits(queue=3))
    return CellSpec(resolve("singleton:retry=3:backoff=0.1"), files(), ("hello", "wörld"), plan, threads=2,
                    audio_dir="/tmp/audio", limits=LimitProbe("/tmp/scratch", "/m/m/model.pth", 2**20))


def through_json(spec: CellSpec) -> CellSpec:
    return CellSpec.from_json(json.loads(json.dumps(spec.to_json())))  # exactly what procs.spec_fd carries


def test_round_trip_keeps_every_field() -> None:
    spec = full_spec()
    back = through_json(spec)
    assert back == spec
    assert back.strategy.option_map == {"retry": 3, "backoff": 0.1}
    assert back.plan.http_limits == HttpLimits(queue=3) and back.limits == LimitProbe("/tmp/scratch",
                                                                                      "/m/m/model.pth", 2**20)


def test_round_trip_of_a_plain_cell() -> None:
    spec = CellSpec(resolve("worker+mmap"), files(), ("one",))
    assert through_json(spec) == spec
    assert spec.plan.kind == "single" and spec.limits is None


def test_the_strategy_arrives_resolved() -> None:
    """The cell reads topology and loader from the message; it never parses the user's name again."""
    data = CellSpec(resolve("mmap+worker"), files(), ("x",)).to_json()
    assert data["strategy"] == {"name": "mmap+worker", "topology": "worker", "loader": "mmap", "options": []}
    data["strategy"]["name"] = "not a strategy name at all"  # a label only, once resolved
    assert CellSpec.from_json(data).strategy == StrategySpec("not a strategy name at all", "worker", "mmap")


def broken(change: dict[str, Any] | None = None, drop: str | None = None) -> dict[str, Any]:
    data = full_spec().to_json()
    if drop:
        del data[drop]
    for key, value in (change or {}).items():
        target, _, leaf = key.rpartition(".")
        node = data
        for part in filter(None, target.split(".")):
            node = node[part]
        node[leaf] = value
    return data


@pytest.mark.parametrize(("data", "says"), [
    (["not", "an", "object"], "cell spec: expected an object, got list"),
    (broken(drop="strategy"), "cell spec: missing field(s) strategy"),
    (broken({"extra": 1}), "cell spec: unknown field(s) extra"),
    (broken({"strategy": "singleton"}), "cell spec.strategy: expected an object, got str"),
    (broken({"strategy.topology": ""}), "cell spec.strategy.topology: expected a non-empty string"),
    (broken({"strategy.options": [["retry"]]}), "cell spec.strategy.options: expected [[key, value], ...]"),
    (broken({"model": {"name": "m"}}), "cell spec.model: not a model's files (KeyError"),
    (broken({"texts": []}), "cell spec.texts: expected a non-empty list of strings"),
    (broken({"texts": ["a", 1]}), "cell spec.texts: expected a non-empty list of strings"),
    (broken({"threads": 0}), "cell spec.threads: expected a whole number >= 1 or null, got 0"),
    (broken({"audio_dir": 3}), "cell spec.audio_dir: expected a path or null, got 3"),
    (broken({"plan.workers": 0}), "cell spec.plan.workers: expected at least 1, got 0"),
    (broken({"plan.colour": "red"}), "cell spec.plan: unknown field(s) colour"),
    (broken({"limits.memcpy_bytes": "big"}), "cell spec.limits.memcpy_bytes: expected a whole number >= 1"),
    (broken({"limits.speed": 1}), "cell spec.limits: unknown field(s) speed"),
])
def test_a_malformed_spec_is_one_clear_error(data: Any, says: str) -> None:
    with pytest.raises(SpecError) as caught:
        CellSpec.from_json(data)
    message = str(caught.value)
    assert message.startswith(says), message
    assert "\n" not in message


def test_the_limit_probe_is_read_before_any_heavy_import() -> None:
    """The cell reads its probe and measures before numpy is imported (it is timed in the imports phase)."""
    code = ("import sys, json\n"
            "from ttsload.bench.cellspec import read_limits\n"
            f"probe = read_limits(json.loads({json.dumps(json.dumps(full_spec().to_json()))}))\n"
            "assert probe.memcpy_bytes == 2**20, probe\n"
            "print('numpy' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert read_limits({"limits": None}) is None
