"""`ttsload client URL`: the serving measurement against any server by URL (the user's own, or ours).

It speaks OpenAI's `POST /v1/audio/speech`, the http scenario's `POST /tts`, or any JSON body the user gives
as a template (bench.loadgen.api), sends one
probe request, then one closed-loop or open-loop step, or a rate sweep against a latency target
(bench.loadgen.measure), and writes the records into a results folder `ttsload report` renders. This process
is the load generator: its own CPU share is reported with every step, since a generator that needs the
cores the server runs on lowers the figure it measures.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ttsload.bench import bounds
from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:
    client = sub.add_parser("client", help="measure any TTS server by URL: time to first audio, latency, and "
                                           "capacity at a latency target (rate sweep)")
    client.add_argument("url", help="server address: http://host:port (the API's path is added) or the endpoint")
    client.add_argument("--api", choices=("openai", "ttsload", "json"), default="openai",
                        help="openai: POST /v1/audio/speech; ttsload: the http scenario's POST /tts; json: POST the "
                             "--body template to the URL's endpoint (default openai)")
    client.add_argument("--body", metavar="TEMPLATE",
                        help="json API: the request body, JSON with {text} inside a string where the text goes, "
                             "e.g. '{\"text\": \"{text}\", \"voice\": \"af\"}'; @FILE reads it from a file")
    client.add_argument("--model", default="tts-1", help="openai API: the `model` field (default tts-1)")
    client.add_argument("--voice", default="alloy", help="openai API: the `voice` field (default alloy)")
    client.add_argument("--format", choices=("wav", "pcm"), default="wav",
                        help="openai API: response_format; pcm is read as --pcm-rate/--pcm-width (default wav)")
    client.add_argument("--pcm-rate", type=bounds.integer_arg(1000, 384000), default=24000,
                        help="a raw PCM answer's sample rate in Hz (openai pcm, json API; default 24000)")
    client.add_argument("--pcm-width", type=int, choices=(1, 2, 3, 4), default=2,
                        help="a raw PCM answer's bytes per sample (default 2: 16-bit)")
    client.add_argument("--pcm-channels", type=bounds.integer_arg(1, 8), default=1,
                        help="a raw PCM answer's channels (default 1: mono)")
    client.add_argument("--no-stream", action="store_true", help="openai API: send stream=false")
    load = client.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=bounds.integer_arg(1, bounds.MAX_CONCURRENCY),
                      help="closed loop: C clients, each sends when its last answer came (the default, C=1)")
    load.add_argument("--rate", type=_rate, help="open loop: one step at R requests/s")
    load.add_argument("--rates", type=_rates, help="open loop: a sweep over these rising rates (comma list)")
    load.add_argument("--sweep", type=_geometric, metavar="START:FACTOR:MAX",
                      help="open loop: a sweep over START, START*FACTOR, ... up to MAX requests/s")
    client.add_argument("--arrivals", choices=("poisson", "gamma"), default="poisson",
                        help="open-loop arrivals (default poisson); gamma is burstier (see --gamma-shape)")
    client.add_argument("--gamma-shape", type=_positive, default=0.5,
                        help="gamma arrivals: shape k, coefficient of variation 1/sqrt(k) (default 0.5)")
    client.add_argument("--target", default="ttfa_p95=1s",
                        help="latency target of a sweep: METRIC_pNN=VALUE[s|ms], METRIC ttfa or total "
                             "(default ttfa_p95=1s)")
    client.add_argument("--allow-underruns", action="store_true",
                        help="a request meets the target on its time alone; underruns are still counted and "
                             "reported (for a model slower than real time here, which no rate would serve)")
    client.add_argument("--requests", type=bounds.requests_arg, default=20, help="requests per step (default 20)")
    client.add_argument("--timeout", type=bounds.seconds_arg(0.0, bounds.MAX_SECONDS), default=120.0,
                        help="seconds one request may take (default 120)")
    client.add_argument("--server-pid", type=bounds.integer_arg(1, 2**22),
                        help="the server's process: its tree's PSS is read after each step (capacity per GiB)")
    client.add_argument("--config", help="label of this server in the results (default host:port/api)")
    client.add_argument("--seed", type=bounds.seed_arg, default=0, help="seed of the arrival schedules (default 0)")
    client.add_argument("--corpus-seed", type=bounds.seed_arg, default=0, help="seed of the text corpus (default 0)")
    client.add_argument("--out", type=Path, help="results folder (default results/client-<date-time>)")
    client.add_argument("--machine", help="name of this machine in the results (default: the hostname)")


def run(args: argparse.Namespace) -> int:
    from rich.text import Text  # here, not at the top: the parser (docs' reference) imports with no dependencies

    from ttsload.bench.harness import environment
    from ttsload.bench.loadgen.api import Api
    from ttsload.bench.loadgen.audio import PcmFormat
    from ttsload.bench.loadgen.measure import GENERATOR_CPU_GOAL, ClientPlan, ProbeFailed, measure
    from ttsload.bench.loadgen.sweep import Target
    from ttsload.bench.planid import plan_hash
    from ttsload.bench.results import ResultStore, new_run_id
    from ttsload.bench.scenario import corpus
    from ttsload.cli import console as ui

    pcm = PcmFormat(args.pcm_rate, args.pcm_channels, args.pcm_width)
    api = Api(args.api, args.model, args.voice, args.format, stream=not args.no_stream,
              body_template=_template(args.body), pcm=pcm)
    endpoint = api.endpoint(args.url)
    target = Target.parse(args.target, args.allow_underruns)
    rates = args.rates or args.sweep or ([args.rate] if args.rate else [])
    kind = args.arrivals if rates else "closed"
    parts = urlsplit(endpoint)
    config = args.config or f"{parts.netloc}/{args.api}"
    plan = ClientPlan(config, endpoint, api, corpus.texts(max(args.requests, 1), args.corpus_seed), args.requests,
                      kind, args.concurrency or 1, rates, target, args.gamma_shape, args.seed, args.timeout,
                      args.server_pid)
    where = environment.collect(args.machine)
    run_id = new_run_id(where["machine"])
    out = args.out or Path("results") / f"client-{run_id}"
    store = ResultStore(out)
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    # The workload's hash: clients of several servers under one workload merge into one folder to compare.
    options["plan_hash"] = plan_hash(options)
    store.write_run(run_id, where, {**options, "command": "client", "config": config})
    steps = len(rates) if rates else 1
    ui.console.print(f"ttsload client {run_id}: {endpoint} ({args.api}), {steps} step(s) of {args.requests} "
                     f"request(s), {'target ' + target.label if len(rates) > 1 else kind} -> {out}")
    with ui.progress() as bar:
        task = bar.add_task("step 1", total=args.requests, detail="")

        def on_request(record: dict[str, Any]) -> None:
            bar.advance(task)

        def on_step(step: dict[str, Any]) -> None:
            ui.console.print(Text(step_line(step, GENERATOR_CPU_GOAL)))
            bar.reset(task, description=f"step {step['step'] + 2}")

        try:
            summary = measure(plan, store.append, on_request, on_step)
        except ProbeFailed as exc:
            store.append([{"type": "serving_request", "config": config, "step": "probe", **exc.record}])
            bar.update(task, visible=False)
            ui.console.print(Text(f"ttsload: error: client: the first request to {endpoint} failed ({exc}); "
                                  "nothing measured", style="red"))
            return ExitCode.FAILED
        bar.update(task, visible=False)
    ui.console.print(Text(summary_line(summary)))
    ui.console.print(f"results: {out} (`ttsload report {out}` renders them)")
    return ExitCode.OK


def step_line(step: dict[str, Any], goal: float) -> str:
    load = f"{step['rate']:g}/s offered {_num(step['offered_rps'])}" if step["rate"] else f"c{step['concurrency']}"
    line = (f"step {step['step'] + 1} {load}: {step['requests_ok']}/{step['requests']} ok, achieved "
            f"{_num(step['achieved_rps'])}/s, TTFA p50/p95 {_num(step['ttfa_p50_s'])}/{_num(step['ttfa_p95_s'])} s, "
            f"total p50/p95 {_num(step['latency_p50_s'])}/{_num(step['latency_p95_s'])} s, "
            f"{'streaming' if step['streaming'] else 'NOT STREAMING'}")
    if step.get("goodput") is not None:
        line += f", goodput {step['goodput']:.0%} ({'meets' if step['target_met'] else 'misses'} the target)"
    if step["errors"]:
        line += ", errors " + ", ".join(f"{kind} {n}" for kind, n in sorted(step["errors"].items()))
    cpu = step.get("generator_cpu_share") or 0.0
    line += f", generator CPU {cpu:.1%} of a core" + (" (above the 5 % goal)" if cpu > goal else "")
    return line + (f", server PSS {step['pss_mb']:.0f} MiB" if step.get("pss_mb") is not None else "")


def summary_line(summary: dict[str, Any]) -> str:
    if "capacity_rps" not in summary:
        return f"{summary['config']}: TTFA p95 {_num(summary['ttfa_p95_s'])} s, total p95 " \
               f"{_num(summary['latency_p95_s'])} s"
    low, high = summary["capacity_rps"], summary["failing_rps"]
    where = f"between {_num(low or 0.0)} and {_num(high)} req/s" if high is not None else \
        f"at least {_num(low)} req/s (no swept rate missed it)"
    per_gib = f", {summary['capacity_per_gib']:.3g} req/s per GiB" if summary.get("capacity_per_gib") else ""
    return f"{summary['config']}: capacity at {summary['target']} {where}{per_gib}"


def _template(body: str | None) -> str | None:
    """--body as given, or read from the file after its @."""
    if body is None or not body.startswith("@"):
        return body
    try:
        return Path(body[1:]).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--body: cannot read the template file '{body[1:]}': "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _positive(text: str) -> float:
    return bounds.seconds_arg(0.0, bounds.MAX_RATE)(text)


def _rate(text: str) -> float:
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a rate above 0 and at most {bounds.MAX_RATE:g}/s, "
                                         f"got {text!r}") from None


def _rates(text: str) -> list[float]:
    rates = [_rate(part.strip()) for part in text.split(",") if part.strip()]
    if not rates or any(b <= a for a, b in zip(rates, rates[1:], strict=False)):
        raise argparse.ArgumentTypeError(f"expected rising rates, got {text!r}")
    return rates


def _geometric(text: str) -> list[float]:
    from ttsload.bench.loadgen.sweep import geometric_rates

    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected START:FACTOR:MAX, e.g. 0.5:1.5:16, got {text!r}")
    try:
        return geometric_rates(*(_rate(p) for p in parts))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
