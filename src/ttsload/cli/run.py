"""`ttsload run`: resolve scenarios, strategies and models into cells, run them, show and keep the results.

Each scenario becomes a batch (its cells and the options they share: texts, deadline); batches run one
after another into one results folder. `--resume DIR` reopens a folder and skips the cells that
finished ok there, so an interrupted hour-long soak does not start again from zero.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ttsload.bench import models, planid, sharding
from ttsload.bench.analysis import quality
from ttsload.bench.cells import Cell, CellKey
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.harness import environment, runner
from ttsload.bench.models import artifacts
from ttsload.bench.plan import PlanError
from ttsload.bench.profiling import passes as profile
from ttsload.bench.results import ResultStore, load_cell_rows, load_records, new_run_id
from ttsload.bench.scenario import loading as scenarios
from ttsload.cli import console as ui
from ttsload.cli import shardplan
from ttsload.strategies.events import Event
from ttsload.strategies.registry import StrategySpec, UnknownStrategy, loader_class, resolve

DEFAULT_STRATEGIES = ["naive", "singleton", "mmap", "quantized", "subprocess-worker"]
DEFAULT_MODELS = ["vits"]
DEFAULT_REPEAT, DEFAULT_TIMEOUT_S = 3, 900.0


@dataclass
class Batch:
    scenario: scenarios.Scenario
    specs: list[StrategySpec]
    models: list[Any]
    cells: list[Cell]
    options: runner.CellOptions


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare(args: argparse.Namespace, out: Path, keeps_audio: list[bool]) -> list[Batch]:
    """Every batch of the command line, checked before any cell starts (bad input fails fast)."""
    batches = []
    for name in _split(args.scenario):
        scenario = scenarios.load(name)
        try:
            specs = [resolve(s) for s in (_split(args.strategy) if args.strategy
                                          else scenario.default("strategies", DEFAULT_STRATEGIES))]
        except UnknownStrategy as exc:
            raise UsageError(str(exc)) from None
        model_files = [models.resolve(m) for m in (_split(args.model) if args.model
                                                    else scenario.default("models", DEFAULT_MODELS))]
        repeat = args.repeat or scenario.default("repeat", DEFAULT_REPEAT)
        single = scenario.kind == "single"
        cells = scenario.cells([s.name for s in specs], model_files, repeat, args.threads,
                               None if single else args.requests, args.timeout)
        for line in scenario.skipped([s.name for s in specs]):
            ui.console.print(f"skipped (not applicable): {line}")
        if getattr(args, "memory_limit", None):  # a limit for every cell, over the scenario's own
            try:
                cells = [replace(c, plan=replace(c.plan, memory_limit_mb=args.memory_limit)) for c in cells]
            except PlanError as exc:
                raise UsageError(f"--memory-limit {args.memory_limit}: {exc}") from None
        cells, mismatched = _servable(cells, {s.name: s for s in specs})
        for line in mismatched:
            ui.console.print(f"skipped (not applicable): {line}")
        if not cells:
            raise UsageError(f"scenario '{scenario.name}': no strategy given can serve the models given"
                             + (f" ({mismatched[0]})" if mismatched else ""))
        saves_audio = single and not keeps_audio  # one single-kind batch keeps audio for the quality check
        keeps_audio.append(saves_audio)
        options = runner.CellOptions(
            scenario.texts(args.requests or (None if "texts" in scenario.data else 10), args.corpus_seed),
            args.cache, args.threads, args.timeout or scenario.default("timeout_s", DEFAULT_TIMEOUT_S),
            args.interval, on_deadline=profile.deadline_evidence(out), scratch_dir=models.home() / "scratch",
            audio_dir=(lambda cell: quality.audio_dir(out, cell.strategy, cell.model.name) if cell.repeat == 0
                       else None) if saves_audio else None,
        )
        batches.append(Batch(scenario, specs, model_files, cells, options))
    return batches


def _servable(cells: list[runner.Cell], specs: dict[str, StrategySpec]) -> tuple[list[runner.Cell], list[str]]:
    """The cells whose strategy has a loader for their model's family; one line per (strategy, model) left out."""
    kept, reasons = [], {}
    for cell in cells:
        families = {cell.model.family, *(m.get("family", "coqui") for m in cell.plan.models)}
        try:
            for family in families:
                specs[cell.strategy].check_family(family)
            if specs[cell.strategy].loader != "artifact" and artifacts.served_only_by_artifact(cell.model):
                raise UnknownStrategy(f"{cell.model.name} is an inference artifact: only the artifact loader "
                                      "serves it (e.g. resident+artifact)")
        except UnknownStrategy as exc:
            reasons.setdefault((cell.strategy, cell.model_label), str(exc))
            continue
        kept.append(cell)
    return kept, [f"{strategy} x {model}: {reason}" for (strategy, model), reason in reasons.items()]


def _record_options(args: argparse.Namespace, batches: list[Batch]) -> dict[str, Any]:
    """What the run record keeps of the command line, resolved."""
    first = batches[0]
    options = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        # resolved values, so runs with and without the flags compare (the gate checks these)
        "requests": args.requests or (len(first.options.texts) if first.scenario.kind == "single" else None),
        "corpus_seed": args.corpus_seed if args.corpus_seed is not None
        else first.scenario.data.get("texts", {}).get("seed", 0),
        "repeat": args.repeat or first.scenario.default("repeat", DEFAULT_REPEAT),
        "strategies": {s.name: {"topology": s.topology, "loader": s.loader} for b in batches for s in b.specs},
        "models": [m.to_json() for m in {m.name: m for b in batches for m in b.models}.values()],
        "texts": batches[0].options.texts,
        "scenarios": [{"name": b.scenario.name, "path": str(b.scenario.path), "kind": b.scenario.kind,
                       "labels": [label for label, _ in b.scenario.variants()]} for b in batches],
        "planned_cells": [c.id for b in batches for c in b.cells],
    }
    return {**options, "plan_hash": planid.plan_hash(options)}


# What a cell measures depends on these: a resume that changes one would mix two measurements in one folder.
# (More strategies, models, scenarios or repeats only add cells, and are allowed.)
SAME_ON_RESUME = ("requests", "corpus_seed", "threads", "cache", "interval", "timeout", "memory_limit", "texts")


def _finished(out: Path, machine_class: str, plan: str) -> set[str]:
    """Cells measured ok in OUT on this machine class (a merged folder holds other classes' cells too)."""
    runs = load_records(out, "run")
    if not runs:
        raise UsageError(f"--resume {out}: no ttsload run there (no run record in {out / 'results.jsonl'})")
    # A plain folder may grow on resume (more strategies, models, scenarios, repeats: `_check_resume` guards
    # the measuring options); a sharded or merged one holds a fixed plan that merge checks, so it resumes only it.
    hashes = {h for r in runs if (h := r.get("options", {}).get("plan_hash"))}
    sharded = any(r.get("options", {}).get("shard") for r in runs)
    if sharded and hashes and hashes != {plan}:
        raise UsageError(f"--resume {out}: the plan differs from the one measured there (plan hash {plan} vs "
                         f"{', '.join(sorted(hashes))}): give the same strategies, models, scenarios and options")
    return {CellKey.of_row(r).id for r in load_cell_rows(out)
            if r.get("status") == "ok" and r.get("machine_class", machine_class) == machine_class}


def _check_resume(out: Path, options: dict[str, Any]) -> None:
    """Refuse, naming the option, to resume a folder whose run was made with different measuring options."""
    runs = load_records(out, "run")
    if not runs:
        return  # _finished says there is no run to resume
    before = runs[0].get("options", {})
    for key in SAME_ON_RESUME:
        if key in before and before[key] != options.get(key):
            flag = "--" + key.replace("_", "-")
            shown = lambda v: f"{len(v)} texts" if isinstance(v, list) else repr(v)  # noqa: E731
            raise UsageError(f"--resume {out}: {flag if key != 'texts' else 'the request texts'} differs: the run "
                             f"there used {shown(before[key])}, this command {shown(options.get(key))}; resume "
                             "with the same options, or start a new folder")


def cmd_run(args: argparse.Namespace) -> int:
    out = args.resume or args.out or Path("results") / time.strftime("%Y%m%d-%H%M%S")
    flag = "--resume" if args.resume else "--out"
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: is a file, not a folder")
    if args.resume and not (out / "results.jsonl").is_file():
        raise UsageError(f"--resume {out}: no ttsload run there (no {out / 'results.jsonl'})")
    shard = sharding.parse(args.shard) if args.shard else None
    tools = profile.parse_tools(args.profile) if args.profile else []
    batches = prepare(args, out, [])
    options = _record_options(args, batches)
    keys = [c.key for b in batches for c in b.cells]
    durations = sharding.expected_durations(keys, args.history or _default_history(), options["requests"],
                                             options["plan_hash"])
    shard_of = sharding.assign(keys, shard.count if shard else 1, durations, args.shard_by)
    if args.list_cells:
        print(shardplan.listing(options["plan_hash"], keys, shard_of, durations, shard, args.shard_by), end="")
        return ExitCode.OK
    store = ResultStore(out, flag)  # the folder's lock, held to the end: a second run there stops here
    environment_record = environment.collect(machine=args.machine)
    stamp = {"machine": environment_record["machine"], "machine_class": environment_record["machine_class"]}
    run_id = new_run_id(stamp["machine"], str(shard) if shard else None)
    if args.resume:
        _check_resume(out, options)  # names the measuring option that differs, before the plan hash says "differs"
    finished = _finished(out, stamp["machine_class"], options["plan_hash"]) if args.resume else set()
    for tool in tools:  # said now, not after the timed cells; the run goes on without that tool
        if problem := profile.unavailable(tool):
            ui.console.print(f"ttsload: {problem}; the timed run continues without {tool}")
    if shard:
        options.update(shard=str(shard), shard_basis=sharding.basis(durations),
                       shard_cells=[k.id for k in keys if shard_of[k.id] == shard.index])
    store.write_run(run_id, environment_record, options)
    planned = sum(len(b.cells) for b in batches)
    for batch in batches:
        batch.cells = [c for c in batch.cells if c.id not in finished
                       and (shard is None or shard_of[c.id] == shard.index)]
    todo = sum(len(b.cells) for b in batches)
    ui.console.print(f"ttsload run {run_id}: {todo} cells -> {out}"
                     + (f" (shard {shard} of a {planned}-cell plan {options['plan_hash']})" if shard else "")
                     + (f" (resumed: {len(finished)} of {planned} finished before)" if args.resume else ""))
    if todo and not args.no_warmup and os.environ.get(WARMUP_ENV) != "0":
        _warm_up([c for b in batches for c in b.cells], args.threads, store, run_id)
    rows: list[dict[str, Any]] = []
    with ui.progress() as bar:
        task = bar.add_task("cells", total=todo, detail="")

        def on_event(cell: Cell, event: dict[str, Any]) -> None:
            detail = event["event"] if event["event"] != Event.REQUEST_END else f"request {event['index'] + 1}"
            bar.update(task, detail=f"{cell.strategy} {cell.scenario} #{cell.repeat}: {detail}")

        def on_done(cell: Cell, row: dict[str, Any]) -> None:
            bar.advance(task)
            bar.console.print(f"[{int(bar.tasks[0].completed)}/{todo}] {cell.id}: ", ui.cell_line(row), sep="")

        try:
            for batch in batches:
                rows += runner.run_cells(batch.cells, batch.options, store, run_id, on_event, on_done, stamp)
        except OSError as exc:  # the results folder cannot be written (full disk, file size limit): stop cleanly
            bar.stop()
            ui.console.print(f"ttsload: cannot write results in {out} ({exc.strerror or exc}): stopped; every cell "
                             f"that finished before is on disk; `ttsload run ... --resume {out}` runs the rest")
            return ExitCode.CANNOT_WRITE
        except KeyboardInterrupt:
            bar.stop()
            ui.console.print(f"interrupted: finished cells are kept in {out}; `ttsload run ... --resume {out}` "
                             "runs the rest")
            ui.print_tables([r for r in store.cell_rows() if r.get("run_id") == run_id], load_records(out, "phase"))
            return ExitCode.INTERRUPTED
    ui.print_tables(rows, [p for p in load_records(out, "phase") if p.get("run_id") == run_id])
    _compare_outputs(batches, rows, out, run_id, store)
    if tools:  # after every timed cell: a profiler's overhead never lands in timings
        first = batches[0]
        cell_options = runner.CellOptions(first.options.texts[:1], "warm", args.threads, first.options.timeout_s,
                                          on_deadline=first.options.on_deadline)
        profile.profile_cells(tools, first.specs, first.models, "single", out, run_id, cell_options, store,
                              lambda record: [ui.console.print(line) for line in profile.describe(record, out)])
    ui.console.print(f"results: {store.path}\nsummary: {out / 'summary.csv'}")
    if not args.no_history and any(r["status"] == "ok" for r in rows):
        from ttsload.bench.regression import history

        ui.console.print(f"history: appended to {history.append(out, args.history)}")
    return ExitCode.FAILED if any(r["status"] != "ok" for r in rows) else ExitCode.OK


WARMUP_ENV = "TTSLOAD_WARMUP"  # 0: no warm-up, as --no-warmup (the test suite's default: one per run is minutes)


def _warm_up(cells: list[Cell], threads: int | None, store: ResultStore, run_id: str) -> None:
    """The warm-up process (bench/harness/warmup.py), recorded in the results; a failed one is said and skipped."""
    from ttsload.bench.harness import warmup

    with ui.console.status("warm-up: importing the runtimes and reading the model files (not measured)"):
        record = warmup.run(cells, threads)
    store.append([{**record, "run_id": run_id}])
    if record["status"] == "ok":
        ui.console.print(f"warm-up: {record['read_bytes'] / 2**20:.0f} MiB of model files read and "
                         f"{', '.join(record['loaders'])} imported in {record['seconds']:.1f} s (not measured)")
    else:
        ui.console.print(f"warm-up failed ({record['reason']}); the run goes on without it")


def _default_history() -> Path:
    from ttsload.bench.regression import history

    return history.default_path()


def _compare_outputs(batches: list[Batch], rows: list[dict[str, Any]], out: Path, run_id: str,
                     store: ResultStore) -> None:
    """Audio of every strategy against an fp32 one, for the batch that kept audio."""
    keeping = [b for b in batches if b.options.audio_dir is not None]
    if not keeping:
        return
    specs = {s.name: s for s in keeping[0].specs}
    families = {m.name: m.family for m in keeping[0].models}
    label = keeping[0].scenario.name
    ok_cells = [(r["strategy"], r["model"], loader_class(specs[r["strategy"]].loader, families[r["model"]]).exact)
                for r in rows if r["status"] == "ok" and r["scenario"] == label and r["strategy"] in specs]
    qualities = quality.compare(out, run_id, list(dict.fromkeys(ok_cells)))
    if qualities:
        store.append(qualities)
        ui.console.print(ui.quality_table(qualities))
