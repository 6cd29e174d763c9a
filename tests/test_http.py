"""The http scenario's cell on the tiny model: a real gunicorn tree, loaded over loopback, measured outside."""

from __future__ import annotations

import dataclasses
import hashlib
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from ttsload.bench.cells import Cell, CellOutcome
from ttsload.bench.harness.runner import CellOptions, run_cell
from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.plan import Plan
from ttsload.bench.scenario import corpus
from ttsload.bench.scenario import loading as scenarios
from ttsload.bench.scenario.schema import ScenarioError
from ttsload.strategies.base import request_seed
from ttsload.strategies.registry import resolve

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

WORKERS = 2
PHASES = [{"do": "requests", "count": 6, "concurrency": 2},
          {"do": "requests", "count": 6, "rate": 4.0, "seed": 0}]
TEXTS = corpus.texts(4)


# Every request of the phases fits in one worker's queue: on a slow or loaded host the open-loop phase backs up,
# and a request turned away with 503 would fail a test about answering, not about admission (test_limits.py).
LIMITS = HttpLimits(queue=len(PHASES) * 6).to_json()


def http_plan(preload: bool, **extra: Any) -> Plan:
    return Plan.from_json({"kind": "http", "workers": WORKERS, "threads": 1, "preload": preload, "order": "cycle",
                           "order_seed": 0, "phases": PHASES, "http_limits": LIMITS, **extra})


def listen_addresses(root: int) -> list[str]:
    """Where the tree listens: inet LISTEN sockets' IPs, and any unix socket bound to a path (psutil
    gives those no LISTEN status; gunicorn >= 25 opens one as its control socket unless told not to)."""
    tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    connections = [c for p in tree for c in p.net_connections(kind="all")]
    return ([c.laddr.ip for c in connections if c.family != socket.AF_UNIX and c.status == psutil.CONN_LISTEN]
            + [f"unix:{c.laddr}" for c in connections if c.family == socket.AF_UNIX and c.laddr])


def run_http(tiny, tmp_path: Path, strategy: str, plan: Plan) -> tuple[CellOutcome, dict[str, Any]]:
    seen: dict[str, Any] = {"pids": set(), "listen": None}

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "measure_root":
            seen["root"] = event["root"]
            seen["pids"].add(event["root"])
        elif event["event"] == "ready":  # the server is up: look at its sockets now
            seen["pids"].update(event["worker_pids"])
            seen["listen"] = listen_addresses(seen["root"])
        elif event["event"] == "request_end":
            seen["pids"].add(event["worker_pid"])

    name = f"http@n{WORKERS}{'-preload' if plan.preload else ''}"
    outcome = run_cell(Cell(strategy, tiny, 0, name, plan=plan), CellOptions(texts=TEXTS, timeout_s=300),
                       tmp_path / f"{name}.log", on_event)
    return outcome, seen


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict[str, tuple[CellOutcome, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("http")
    return {"plain": run_http(tiny, tmp, "singleton", http_plan(False)),
            "preload": run_http(tiny, tmp, "singleton", http_plan(True))}


def requests(outcome: CellOutcome) -> list[dict[str, Any]]:
    return sorted((e for e in outcome.events if e["event"] == "request_end"), key=lambda e: e["index"])


@pytest.mark.parametrize("kind", ["plain", "preload"])
def test_every_request_answered_by_the_server_tree(runs, kind):
    outcome, seen = runs[kind]
    assert outcome.status == "ok", f"{outcome.reason}\n{outcome.log}"
    done = requests(outcome)
    assert [e["index"] for e in done] == list(range(12))
    assert not [e for e in outcome.events if e["event"] == "request_failed"]
    assert [e["phase"] for e in done] == ["c2"] * 6 + ["rate4"] * 6
    assert all(e["audio_s"] > 0 and e["latency_s"] > 0 for e in done)
    # timed by the client's sender: the Flask app answers with the whole clip, so its first audio is no stream
    assert all(0 < e["ttfa_s"] <= e["latency_s"] and e["streaming"] is False and e["send_error_s"] >= 0 for e in done)
    names = [e["event"] for e in outcome.events]
    assert names.count("worker_ready") == WORKERS and names.count("first_audio") == 1
    assert names.index("ready") < names.index("first_audio") < names.index("requests_done")
    ready = next(e for e in outcome.events if e["event"] == "ready")
    assert ready["http_limits"] == LIMITS  # the limits the server ran under, recorded
    assert outcome.root == seen["root"] != outcome.events[0]["pid"]  # the server's tree, not the cell's
    assert max(len(r.processes) for r in outcome.readings) >= WORKERS + 1
    assert len(outcome.steady.processes) == WORKERS + 1


@pytest.mark.parametrize("kind", ["plain", "preload"])
def test_model_events_reach_the_runner_from_the_server(runs, kind):
    outcome, seen = runs[kind]
    loads = [e for e in outcome.events if e["event"] == "weights_done"]
    assert len(loads) == (1 if kind == "preload" else WORKERS)
    loaders = {e["pid"] for e in loads}
    assert loaders == ({seen["root"]} if kind == "preload" else seen["pids"] - {seen["root"]})


@pytest.mark.parametrize("kind", ["plain", "preload"])
def test_server_listens_on_loopback_only_and_is_gone_afterwards(runs, kind):
    outcome, seen = runs[kind]
    assert seen["listen"] and set(seen["listen"]) == {"127.0.0.1"}
    assert len(seen["pids"]) == WORKERS + 1
    assert not [pid for pid in seen["pids"] if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_same_audio_with_and_without_preload_and_as_in_process(runs, tiny):
    """The Flask app answers each request with the whole clip: the in-process non-streamed synthesis (the single
    scenario streams a sentence at a time, whose joined clips differ from one pass over a multi-sentence text)."""
    by_text = {}
    for kind in ("plain", "preload"):
        for event in requests(runs[kind][0]):
            by_text.setdefault(TEXTS[event["index"] % len(TEXTS)], set()).add(event["audio_sha256"])
    assert all(len(digests) == 1 for digests in by_text.values()), by_text
    with resolve("singleton").build(tiny, lambda *a, **k: None, 1) as topology:
        whole = {text: {hashlib.sha256(topology.synthesize(text, request_seed(text)).wav.tobytes()).hexdigest()}
                 for text in TEXTS}
    assert by_text == whole


def test_preloaded_workers_share_the_masters_pages(runs):
    for kind in ("plain", "preload"):
        total = runs[kind][0].steady.total
        print(f"{kind}: pss {total['pss'] / 2**20:.0f} MB, rss {total['rss'] / 2**20:.0f} MB")
    shared, alone = runs["preload"][0].steady.total, runs["plain"][0].steady.total
    assert shared["pss"] < 0.7 * shared["rss"]  # tiny model: ~0.55 preloaded, ~0.8 without
    assert shared["pss"] / shared["rss"] < alone["pss"] / alone["rss"] - 0.1


def test_preload_with_a_per_request_strategy_fails_clearly(tiny, tmp_path):
    outcome, _ = run_http(tiny, tmp_path, "naive", http_plan(True))
    assert outcome.status == "failed"
    assert "preload needs a topology that serves from a resident model" in outcome.reason
    assert "naive" in outcome.reason


def test_a_worker_that_cannot_load_fails_the_cell_and_leaves_nothing(tiny, tmp_path):
    corrupt = dataclasses.replace(tiny, sha256={name: "0" * 64 for name in tiny.sha256})
    outcome, seen = run_http(corrupt, tmp_path, "singleton", http_plan(False))
    assert outcome.status == "failed"
    assert outcome.reason.startswith("http server: sha256 mismatch"), outcome.reason
    assert seen["pids"] and not [pid for pid in tree_of(seen["root"])]


def tree_of(root: int) -> list[int]:
    try:
        return [root, *(p.pid for p in psutil.Process(root).children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def test_loadgen_never_imports_torch():
    probe = "import sys, ttsload.bench.serving.loadgen; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_scenarios_http_table_sets_the_limits_in_every_cells_plan(tiny, tmp_path):
    path = tmp_path / "limits.toml"
    path.write_text('summary = "x"\nkind = "http"\n[http]\npreload = [false]\nqueue = 2\nmax_text_chars = 300\n'
                    'request_timeout_s = 30\n')
    (cell,) = scenarios.load(str(path)).cells(["singleton"], [tiny], 1)
    assert cell.plan.http_limits == HttpLimits(max_text_chars=300, queue=2, request_timeout_s=30)
    assert Plan.from_json(cell.plan.to_json()) == cell.plan
    path.write_text('summary = "x"\nkind = "http"\n[http]\nqueue = 0\n')
    with pytest.raises(ScenarioError, match=r"limits.toml: http.queue: expected an integer from 1 to 1024, got 0$"):
        scenarios.load(str(path))
