"""`ttsload`: one entry point with subcommands (run, report, merge, profile, models, strategies, gate, noise,
baseline, history, fuzz-http, client, serve)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from ttsload import __version__
from ttsload.bench import bounds
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode
from ttsload.bench.scenario import corpus
from ttsload.cli import client as client_command
from ttsload.cli import doctor, fuzz_http
from ttsload.cli import gate as gate_command
from ttsload.cli import noise as noise_command
from ttsload.cli import serve as serve_command


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag gets one line on stderr (the usage block is in --help), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = OneLineParser(prog="ttsload", description="Measure how to load and serve Coqui TTS models.")
    top.add_argument("--version", action="version", version=f"ttsload {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="measure strategies on a model, each repetition in a fresh process")
    run.add_argument("--scenario", default="single",
                     help="comma list of scenario names or .toml paths (see `ttsload scenarios`; default single)")
    run.add_argument("--strategy", help="comma list of presets or TOPOLOGY+LOADER (see `ttsload strategies`; default: "
                                        "the scenario's, else naive,singleton,mmap,quantized,subprocess-worker)")
    run.add_argument("--model", help="comma list of fixture names or Coqui model paths (default: the scenario's, "
                                     "else vits)")
    run.add_argument("--requests", type=bounds.requests_arg,
                     help="requests per cell, or per load phase of a scenario (default: the scenario's; single: 10)")
    run.add_argument("--repeat", type=bounds.repeat_arg,
                     help="fresh-process repetitions per cell (default: the scenario's, else 3)")
    run.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue the run in DIR: cells that finished ok there are skipped, the rest run")
    run.add_argument("--cache", choices=("warm", "cold"), default="warm", help="page cache of model files")
    run.add_argument("--out", type=Path, help="results folder (default results/<date-time>)")
    run.add_argument("--threads", type=bounds.threads_arg, help="torch threads per process (default: torch's own)")
    run.add_argument("--timeout", type=bounds.timeout_arg,
                     help="deadline per cell in seconds, at most a week (default: the scenario's, else 900)")
    run.add_argument("--interval", type=bounds.interval_arg, default=0.05, help="memory sampling interval in seconds")
    run.add_argument("--corpus-seed", type=bounds.seed_arg,
                     help="seed of the text corpus (default: the scenario's, else 0)")
    run.add_argument("--memory-limit", type=bounds.memory_arg, metavar="MB",
                     help="memory limit on each cell's process tree (cgroup v1/v2, else RLIMIT_AS; default: none, "
                          "or the faults scenario's for its oom drill)")
    run.add_argument("--history", type=Path, help="history store to append to (default $TTSLOAD_HOME/history.jsonl)")
    run.add_argument("--no-history", action="store_true", help="do not append this run to the history store")
    run.add_argument("--no-warmup", action="store_true",
                     help="skip the warm-up process (imports and model files read once, never measured) that runs "
                          "before the first cell")
    run.add_argument("--shard", metavar="I/N", help="run only shard I of N (0-based I: 0/3 1/3 2/3; env/N reads "
                                                   "$JOB_COMPLETION_INDEX), balanced by the history's durations")
    run.add_argument("--shard-by", choices=("config", "cell"), default="config",
                     help="what stays together in one shard: every repetition of a strategy x model x scenario "
                          "(config, default) or each repetition alone (cell)")
    run.add_argument("--list-cells", action="store_true",
                     help="print the expanded plan (cell ids, shard, expected duration) and run nothing")
    run.add_argument("--machine", help="name of this machine in the results (default: the hostname)")

    report = sub.add_parser("report", help="build the HTML report (plus CSV/Markdown tables) of a results folder")
    report.add_argument("folder", type=Path, help="results folder (holds results.jsonl); may be partial")
    report.add_argument("--out", type=Path, help="HTML file or folder (default FOLDER/report/report.html)")

    merge = sub.add_parser("merge", help="merge the results folders of one plan's shards or machines into one")
    merge.add_argument("folders", type=Path, nargs="+", metavar="DIR", help="results folders (or merged ones)")
    merge.add_argument("--out", type=Path, required=True, help="merged results folder (created or rewritten)")

    run.add_argument("--profile", help="comma list of profilers (memray, py-spy): after the timed cells, "
                                       "one profiling pass per strategy and model, never timed")

    prof = sub.add_parser("profile", help="run cells under memray or py-spy, apart from any timed run")
    prof.add_argument("--tool", required=True, help="memray or py-spy (or a comma list)")
    prof.add_argument("--strategy", required=True, help="comma list of presets or TOPOLOGY+LOADER")
    prof.add_argument("--model", default="vits", help="comma list of fixture names or Coqui model paths")
    prof.add_argument("--scenario", default="single", help="scenario to profile (default single)")
    prof.add_argument("--out", type=Path, help="results folder (default results/<date-time>)")
    prof.add_argument("--threads", type=bounds.threads_arg, help="torch threads per process (default: torch's own)")
    prof.add_argument("--timeout", type=bounds.timeout_arg, default=900.0, help="deadline per profiled cell in seconds")
    prof.add_argument("--corpus-seed", type=bounds.seed_arg, default=0, help="seed of the text corpus")

    models = sub.add_parser("models", help="build or list the model fixtures")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    build = models_sub.add_parser("build", help="build fixtures (cached; identical bytes on rebuild)")
    build.add_argument("names", nargs="+")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    models_sub.add_parser("list", help="list fixtures and whether they are built")
    export = models_sub.add_parser("export", help="write a model's inference artifact (weight norm folded, "
                                   "training-only modules dropped, aligned safetensors + manifest)")
    export.add_argument("model", help="fixture name or model path")
    export.add_argument("--out", type=Path, help="artifact folder (default $TTSLOAD_HOME/artifacts/<sha256>, "
                        "where the `artifact` loader finds it for the same model)")

    sub.add_parser("strategies", help="list presets, topologies and loaders")
    sub.add_parser("scenarios", help="list the built-in scenarios with what each measures")
    doctor.add_parser(sub)
    fuzz_http.add_parser(sub)
    client_command.add_parser(sub)
    serve_command.add_parser(sub)

    gate_command.add_parser(sub)
    noise_command.add_parser(sub)

    baseline = sub.add_parser("baseline", help="save a results folder as a compact baseline to commit")
    baseline_sub = baseline.add_subparsers(dest="baseline_command", required=True)
    save = baseline_sub.add_parser("save", help="write baselines/NAME.json from a results folder")
    save.add_argument("folder", type=Path)
    save.add_argument("name")
    save.add_argument("--dir", type=Path, default=Path("baselines"), help="where baselines live (default baselines/)")

    history = sub.add_parser("history", help="plot a metric across commits per strategy, marking steps")
    history.add_argument("metric")
    history.add_argument("--history", type=Path, help="history store (default $TTSLOAD_HOME/history.jsonl)")
    history.add_argument("--model", help="only this model")
    history.add_argument("--threshold", default="10%", help="smallest step worth marking (default 10%%)")
    history.add_argument("--out", type=Path, help="plot file (default reports/out/history-METRIC.png)")
    return top


def _run_options(args: argparse.Namespace, specs: list[Any], model_files: list[Any],
                 texts: list[str]) -> dict[str, Any]:
    """What the run record keeps of the command line, resolved."""
    return {
        **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "strategies": {s.name: {"topology": s.topology, "loader": s.loader} for s in specs},
        "models": [m.to_json() for m in model_files], "texts": texts,
    }


def cmd_run(args: argparse.Namespace) -> int:
    from ttsload.cli.run import cmd_run as run

    return run(args)


def cmd_merge(args: argparse.Namespace) -> int:
    from ttsload.bench import merging

    print(merging.describe(merging.merge(args.folders, args.out)), end="")
    return ExitCode.OK


def cmd_doctor(args: argparse.Namespace) -> int:
    return doctor.run(args.fix)


def cmd_scenarios(args: argparse.Namespace) -> int:
    from ttsload.bench.scenario import loading as scenarios

    found = scenarios.available()
    width = max(map(len, found), default=0)
    for name, path in found.items():
        scenario = scenarios.load(str(path))
        print(f"{name:<{width}} {scenario.kind:<7} {scenario.summary}")
    print(f"(scripts in {scenarios.builtin_folder()}; `ttsload run --scenario PATH.toml` runs your own)")
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    from ttsload.reports.build import build_report

    print(f"report: {build_report(args.folder, args.out)}")
    return ExitCode.OK

def cmd_profile(args: argparse.Namespace) -> int:
    from ttsload.bench import models, results
    from ttsload.bench.harness import environment, runner
    from ttsload.bench.profiling import passes as profile
    from ttsload.bench.results import ResultStore
    from ttsload.cli import console as ui
    from ttsload.strategies.registry import UnknownStrategy, resolve

    tools = profile.parse_tools(args.tool)
    scenario = profile.check_scenario(args.scenario)
    try:
        specs = [resolve(name) for name in args.strategy.split(",") if name.strip()]
    except UnknownStrategy as exc:
        raise UsageError(str(exc)) from None
    if problems := [p for tool in tools if (p := profile.unavailable(tool))]:
        print(f"ttsload: error: {problems[0]}", file=sys.stderr)
        return ExitCode.FAILED
    model_files = [models.resolve(m.strip()) for m in args.model.split(",") if m.strip()]
    where = environment.collect()
    run_id = results.new_run_id(where["machine"])
    out = args.out or Path("results") / run_id
    store = ResultStore(out)
    texts = corpus.texts(1, args.corpus_seed)  # cold start ends at the first audio: one request
    store.write_run(run_id, where, {**_run_options(args, specs, model_files, texts), "pass": "profile"})
    options = runner.CellOptions(texts, "warm", args.threads, args.timeout, on_deadline=profile.deadline_evidence(out))
    ui.console.print(f"ttsload profile {run_id}: {len(tools) * len(specs) * len(model_files)} passes -> {out}")
    records = profile.profile_cells(tools, specs, model_files, scenario, out, run_id, options, store,
                                    lambda record: [ui.console.print(line) for line in profile.describe(record, out)])
    return ExitCode.OK if all(r["status"] == "ok" for r in records) else ExitCode.FAILED


def cmd_models(args: argparse.Namespace) -> int:
    from ttsload.bench import models

    if args.models_command == "list":
        for row in models.listing():
            state = "not built"
            if row["built"]:
                state = f"built, {row['params'] / 1e6:.1f} M params, {row['bytes'] / 2**20:.1f} MiB"
            print(f"{row['name']:<15} {row['family']:<7} {state:<40} {row['summary']}\n{'':<15} {row['path']}")
        return ExitCode.OK
    if args.models_command == "export":
        from ttsload.cli.export import export

        out, facts = export(models.resolve(args.model), args.out)
        print(f"{args.model}: {out} ({facts['export_s']} s): {facts['tensors']} tensors, "
              f"{facts['elements'] / 1e6:.2f} M elements (the source: {facts['source_params'] / 1e6:.2f} M params), "
              f"{facts['folded']} parametrizations folded, dropped {', '.join(facts['dropped']) or 'nothing'}; "
              "load it with --strategy resident+artifact")
        return ExitCode.OK
    for name in args.names:
        start = time.monotonic()
        files = models.build(name, force=args.force)
        print(f"{name}: {files.checkpoint.parent} ({time.monotonic() - start:.1f} s)")
    return ExitCode.OK


def cmd_strategies(args: argparse.Namespace) -> int:
    from ttsload.strategies.families import FAMILIES
    from ttsload.strategies.registry import PRESETS, loaders, topologies

    print("presets:")
    for name, (topology, loader) in PRESETS.items():
        print(f"  {name:<18} = {topology}+{loader}")
    print("topologies:")
    for name, cls in topologies().items():
        print(f"  {name:<18} {cls.summary}")
    for family in FAMILIES.values():
        print(f"loaders for {family.name} ({family.summary}):")
        for name, by_family in loaders().items():
            if family.name in by_family:
                print(f"  {name:<18} {by_family[family.name].summary}")
        for preset_loader, own in family.aliases.items():
            print(f"  {preset_loader:<18} = {own} (the presets' '{preset_loader}' for this family)")
    from ttsload.strategies import options

    options.parse("", "")  # registers the built-in option keys
    print("options (after any strategy: NAME:key=value:key=value):")
    for key, option in sorted(options.OPTIONS.items()):
        print(f"  {key:<18} {option.help}")
    return ExitCode.OK


def cmd_gate(args: argparse.Namespace) -> int:
    return gate_command.run(args)


def cmd_noise(args: argparse.Namespace) -> int:
    return noise_command.run(args)


def cmd_baseline(args: argparse.Namespace) -> int:
    from ttsload.bench.regression import resultset as baseline

    target = baseline.save(args.folder, args.name, args.dir)
    print(f"baseline '{args.name}': {target} ({target.stat().st_size / 1024:.0f} KiB)")
    return ExitCode.OK


def cmd_history(args: argparse.Namespace) -> int:
    from ttsload.bench.regression import history

    print(history.show(args.metric, args.history, args.model, args.threshold, args.out), end="")
    return ExitCode.OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # SIGTERM (a CI timeout, `kill`, a run started in the background where SIGINT is ignored) stops a
    # run the way Ctrl-C does: the cell under way is killed with its process group, finished ones are kept.
    signal.signal(signal.SIGTERM, _interrupt)
    args = parser().parse_args(argv)
    from ttsload.strategies import families

    for line in families.plugin_errors():  # a left-out family plugin is named, and the command goes on
        print(f"ttsload: warning: {line}", file=sys.stderr)
    handlers = {"doctor": cmd_doctor, "run": cmd_run, "report": cmd_report, "profile": cmd_profile,
                "models": cmd_models, "strategies": cmd_strategies, "scenarios": cmd_scenarios, "gate": cmd_gate,
                "noise": cmd_noise, "baseline": cmd_baseline, "history": cmd_history, "fuzz-http": fuzz_http.run,
                "merge": cmd_merge, "client": client_command.run,
                "serve": serve_command.run}
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"ttsload: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except Exception:  # a bug, not a failed cell: a wrapper (a Job's retry rule, a CI step) must tell them apart
        traceback.print_exc()
        print(f"ttsload: crashed (a bug in ttsload, not a failed cell): exit {ExitCode.CRASH}", file=sys.stderr)
        return ExitCode.CRASH


if __name__ == "__main__":
    sys.exit(main())
