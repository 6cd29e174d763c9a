"""A synthetic sharded result set of any size, to see where `ttsload merge` and `ttsload report` stop scaling.

    python -m tests.synthetic --cells 100000 --shards 8 --classes 2 --out DIR [--time]

writes DIR/shard-K-of-N-CLASS folders as `ttsload run --shard` would: one plan (one plan hash), each shard's
run record, and per cell its row plus a few events and memory samples (--samples per cell; a real cell
with 10 requests and the 50 ms sampler writes about 200 records, 100 KB). With --time it then merges them
into DIR/merged and builds its report, and prints the seconds each step took and the bytes written.
Numbers are drawn from a seeded generator: the same arguments give the same files.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from itertools import product
from pathlib import Path
from typing import Any

from ttsload.bench import planid, sharding
from ttsload.bench.analysis.metrics import COLUMNS
from ttsload.bench.cells import CellKey
from ttsload.bench.results import ResultStore

CLASS_CPUS = ("AMD EPYC", "Intel Xeon (AMX)", "Ampere Altra", "Intel Core")


def plan_shape(cells: int, classes: int) -> tuple[int, int, int, int]:
    """(strategies, models, scenarios, repetitions) whose product times `classes` is about `cells`."""
    strategies, repeat = 8, 5
    per_class = max(1, cells // classes)
    configs = max(1, per_class // repeat)
    models = max(1, min(25, round(math.sqrt(configs / strategies))))
    scenarios = max(1, round(configs / (strategies * models)))
    return strategies, models, scenarios, repeat


def plan(cells: int, classes: int) -> list[CellKey]:
    """Repetitions outermost, like a real plan; scenarios past the first are pool variants (name@nK)."""
    strategies, models, scenarios, repeat = plan_shape(cells, classes)
    names = ["single", *[f"workers@n{k}" for k in range(1, scenarios)]]
    return [CellKey(f"strategy{s}", f"model{m}", names[c], r)
            for r, m, c, s in product(range(repeat), range(models), range(scenarios), range(strategies))]


def _row(key: CellKey, run_id: str, machine: str, machine_class: str, factor: float, rng: random.Random) -> dict:
    base = 1.0 + int(key.strategy[8:]) * 0.3 + int(key.model[5:]) * 0.1
    cold = base * factor * rng.uniform(0.95, 1.05)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(run_id=run_id, strategy=key.strategy, model=key.model, family="coqui", scenario=key.scenario,
               repeat=key.repeat, status="ok", reason="", cold_start_s=cold, import_s=0.5 * cold,
               verify_s=0.05 * cold, construct_s=0.1 * cold, weights_s=0.2 * cold, first_audio_s=0.1 * cold,
               wall_s=cold + 2.0, pss_mb=300 + 40 * base * rng.uniform(0.98, 1.02), uss_mb=280 + 40 * base,
               rss_mb=320 + 40 * base, pss_anon_mb=200 + 30 * base, pss_file_mb=100, peak_pss_mb=350 + 40 * base,
               latency_p50_s=0.2 * base * factor * rng.uniform(0.95, 1.05), latency_p90_s=0.25 * base * factor,
               rtf=0.15 * base * factor, audio_s=1.2, requests=1, loads=1, processes=1, cache="warm",
               machine=machine, machine_class=machine_class, strategy_options={})
    if "@" in key.scenario:
        row.update(workers=int(key.scenario.rpartition("n")[2]), pss_total_mb=row["pss_mb"] * 1.5)
    return row


def _records(key: CellKey, run_id: str, row: dict[str, Any], samples: int) -> list[dict[str, Any]]:
    cell, t = {"run_id": run_id, "cell": key.id}, 0.0
    out = []
    for event in ("imports_done", "load_start", "verify_done", "construct_done", "weights_done", "first_audio"):
        t += row["cold_start_s"] / 6
        out.append({"type": "event", **cell, "event": event, "t": t, "t_rel": t, "pid": 1})
    for i in range(samples):
        mib = int(row["pss_mb"] * 2**20 * (i + 1) / samples)
        out.append({"type": "sample", **cell, "t": i * 0.05, "t_rel": i * 0.05, "n": 1,
                    "processes": [{"pid": 1, "rss": mib, "pss": mib, "uss": mib}],
                    "total": {"rss": mib, "pss": mib, "uss": mib}, **({"steady": True} if i == samples - 1 else {})})
    out.append({"type": "request", **cell, "index": 0, "chars": 80, "latency_s": row["latency_p50_s"],
                "audio_s": 1.2, "pid": 1})
    return out


def write(out: Path, cells: int, shards: int, classes: int, samples: int, seed: int = 0) -> list[Path]:
    """The shard folders of one synthetic plan measured on `classes` machine classes."""
    keys = plan(cells, classes)
    assignment = sharding.assign(keys, shards, {}, "config")
    options = {"requests": 1, "repeat": max(k.repeat for k in keys) + 1, "cache": "warm", "interval": 0.05,
               "strategies": {s: {"topology": "synthetic", "loader": "synthetic"}
                              for s in dict.fromkeys(k.strategy for k in keys)},
               "models": [{"name": m, "family": "coqui", "sha256": {}} for m in dict.fromkeys(k.model for k in keys)],
               "planned_cells": [k.id for k in keys], "synthetic": True}
    options["plan_hash"] = planid.plan_hash(options)
    rng = random.Random(seed)
    folders = []
    for c, shard in product(range(classes), range(shards)):
        machine_class, machine = f"synthetic{c:02d}", f"node-{c}-{shard}"
        folder = out / f"shard-{shard}-of-{shards}-class{c}"
        run_id = f"20260101-000000-{machine}-s{shard}of{shards}"
        store = ResultStore(folder)
        fingerprint = {"cpu": CLASS_CPUS[c % len(CLASS_CPUS)], "cores_logical": 2 * (c + 1), "isa": []}
        store.write_run(run_id, {"machine": machine, "machine_class": machine_class, "fingerprint": fingerprint,
                                 "cpu": fingerprint["cpu"]},
                        {**options, "shard": f"{shard}/{shards}", "shard_basis": sharding.basis({})})
        records: list[dict[str, Any]] = []
        for key in keys:
            if assignment[key.id] == shard:
                row = _row(key, run_id, machine, machine_class, 1.0 + 0.5 * c, rng)
                records += [*_records(key, run_id, row, samples), {"type": "cell", **row}]
        store.append(records)
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=100_000, help="cells in all (plan x machine classes)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--classes", type=int, default=2, help="machine classes, each running the whole plan")
    parser.add_argument("--samples", type=int, default=4, help="memory samples per cell (a real cell: ~150)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--time", action="store_true", help="then merge and report, and print how long each took")
    args = parser.parse_args(argv)
    start = time.monotonic()
    folders = write(args.out, args.cells, args.shards, args.classes, args.samples)
    size = sum((f / "results.jsonl").stat().st_size for f in folders)
    print(f"wrote {len(folders)} shard folders, {size / 2**20:.0f} MiB of results.jsonl "
          f"({time.monotonic() - start:.1f} s)")
    if args.time:
        from ttsload.bench import merging
        from ttsload.reports.build import build_report

        start = time.monotonic()
        merged = merging.merge(folders, args.out / "merged")
        print(f"merge: {merged.cells} cells, {merged.records} records in {time.monotonic() - start:.1f} s")
        start = time.monotonic()
        report = build_report(args.out / "merged")
        print(f"report: {report} ({report.stat().st_size / 2**20:.1f} MiB) in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
