"""The zygote topology: a template that imported the runtime and never computed forks workers that load.

Run in fresh processes, as in a real cell: a process that already ran torch (this one) cannot fork safely.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ttsload
from ttsload.bench.scenario.corpus import texts as corpus
from ttsload.strategies.base import request_seed
from ttsload.strategies.registry import resolve

pytestmark = pytest.mark.integration  # every test here builds a model or starts a ttsload child

TEXTS = corpus(3, seed=7)

SCRIPT = """
import json, os, sys, time
import numpy as np
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve
files = ModelFiles.from_json(json.loads(sys.argv[1])); out = sys.argv[2]; texts = json.loads(sys.argv[3])
events = []
hook = lambda e, t=None, **f: events.append((e, f))
tasks = lambda: len(os.listdir('/proc/self/task'))
z = resolve('zygote+mmap').build(files, hook, workers=2)  # torch's default threads, as the singleton here
z.start()
for i, (text, seed) in enumerate(texts):
    np.save(f'{out}/{i}.npy', z.synthesize(text, seed).wav)
import torch
template = {'threads': torch.get_num_threads(), 'tasks': tasks(),
            'tasks_at_ready': next(f['tasks'] for e, f in events if e == 'template_ready')}
z.close()
torch.set_num_threads(2); a = torch.randn(400, 400); a @ a  # control: a parallel region here starts a team
template['tasks_after_parallel'] = tasks()
workers = {f['worker_pid'] for e, f in events if e == 'worker_forked'}
loads = {f['pid'] for e, f in events if e == 'weights_done'}
print(json.dumps({'template': template, 'workers': sorted(workers), 'loads': sorted(loads), 'me': os.getpid(),
                  'order': [e for e, f in events if e in ('template_ready', 'worker_requested', 'load_start')]}))
"""


def test_zygote_children_load_and_are_bit_identical_and_the_template_never_runs_a_parallel_region(tiny, tmp_path):
    texts = [(text, request_seed(text)) for text in TEXTS]
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(tiny.to_json()), str(tmp_path), json.dumps(texts)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    # each of the two workers loaded its own model; the template loaded nothing
    assert len(facts["workers"]) == 2 and facts["loads"] == facts["workers"] and facts["me"] not in facts["loads"]
    assert facts["order"][:3] == ["template_ready", "worker_requested", "worker_requested"]
    template = facts["template"]
    assert template["threads"] == 1  # computing with one thread never starts libgomp's team
    assert template["tasks"] <= template["tasks_at_ready"]  # no thread team appeared while workers served
    assert template["tasks_after_parallel"] > template["tasks"]  # the probe sees a team where one runs
    with resolve("singleton").build(tiny, lambda *a, **k: None) as singleton:
        for i, (text, seed) in enumerate(texts):
            assert np.array_equal(np.load(tmp_path / f"{i}.npy"), singleton.synthesize(text, seed).wav)


def test_zygote_cold_start_runs_from_the_worker_request_with_the_template_apart(tiny, tmp_path: Path):
    done = ttsload("run", "--strategy", "zygote+eager", "--model", str(tiny.checkpoint.parent), "--requests", "1",
                   "--repeat", "1", "--out", str(tmp_path), "--no-history", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(csv.DictReader(open(tmp_path / "summary.csv")))
    events = {}
    for line in open(tmp_path / "results.jsonl"):
        record = json.loads(line)
        if record.get("type") == "event":
            events.setdefault(record["event"], record)
    assert row["status"] == "ok" and row["loads"] == "1"
    asked, first = events["worker_requested"]["t"], events["first_audio"]["t"]
    assert float(row["cold_start_s"]) == float(first - asked)
    # the CPU span starts at the same event: it covers the worker's load and first audio, not the template's imports
    cpu_asked, cpu_first = events["worker_requested"].get("cpu"), events["first_audio"].get("cpu")
    assert cpu_asked is not None and cpu_first is not None
    assert abs(float(row["cold_start_cpu_s"]) - (cpu_first - cpu_asked)) < 1e-3  # rounded to ms in the summary
    assert 0 < float(row["cold_start_cpu_s"]) < cpu_first  # the tree's CPU since its start includes the imports
    assert events["template_ready"]["t"] <= asked and float(row["template_s"]) > 0
    assert events["weights_done"]["pid"] != events["template_ready"]["pid"]  # loaded in the forked worker


POOL = """
import json, sys
from ttsload.bench.cell.pool import Pool
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve
events = []
pool = Pool(resolve('zygote+mmap'), ModelFiles.from_json(json.loads(sys.argv[1])),
            lambda e, t=None, **f: events.append((e, f)), threads=1)
pool.start(1)
pool.add(2)  # a scale-out: two more forks of the template, each loading its own model
pool.join_scale_outs()
served = {pool.serve(i, 'Hello there.', 1)[1].pid for i in range(6)}
pool.close()
print(json.dumps({'ready': sorted(f['worker_pid'] for e, f in events if e == 'worker_ready'),
                  'loaded': sorted(f['pid'] for e, f in events if e == 'weights_done'),
                  'requested': sum(e == 'worker_requested' for e, f in events), 'served': len(served)}))
"""


def test_a_pool_scales_out_by_forking_the_template(tiny):
    done = subprocess.run([sys.executable, "-c", POOL, json.dumps(tiny.to_json())], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["requested"] == 3 and len(facts["ready"]) == 3
    assert facts["loaded"] == facts["ready"]  # every worker loaded once, in itself; the template never did
    assert facts["served"] >= 1
