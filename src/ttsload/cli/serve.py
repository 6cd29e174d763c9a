"""`ttsload serve`: one of the http scenario's server stacks on loopback, until interrupted.

The same servers the http and asgi scenarios start in their cells (bench/serving/stacks.py, server.py), for a
measurement from outside: `ttsload client` against it, or the user's own load tool. It prints one JSON line
with the URL and the server's pid (pass it to `ttsload client --server-pid` for the tree's memory), and
stops the whole server tree on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import AbstractContextManager
from typing import Any

from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ttsload.bench.plan import STACKS

    serve = sub.add_parser("serve", help="run one of the http scenario's server stacks on loopback until "
                                         "interrupted (to measure it with `ttsload client`)")
    serve.add_argument("--stack", choices=STACKS, default="uvicorn",
                       help="flask: gunicorn + Flask, POST /tts; the others serve OpenAI's POST /v1/audio/speech "
                            "(docs/serving.md; default uvicorn)")
    serve.add_argument("--strategy", default="singleton", help="strategy the server loads with (default singleton)")
    serve.add_argument("--model", default="vits", help="fixture name or model path (default vits)")
    serve.add_argument("--workers", type=int, default=2, help="server workers (default 2)")
    serve.add_argument("--threads", type=int,
                       help="torch threads per worker (default: the cores shared out, at least 1)")
    serve.add_argument("--preload", action="store_true",
                       help="gunicorn stacks: load in the master before forking the workers")


def serving(args: argparse.Namespace) -> AbstractContextManager[Any]:
    from ttsload.bench import models
    from ttsload.bench.serving import server, stacks
    from ttsload.strategies.allocator import process_environment
    from ttsload.strategies.base import StrategyError
    from ttsload.strategies.registry import resolve

    if args.workers < 1 or (args.threads is not None and args.threads < 1):
        raise UsageError("serve: --workers and --threads must be at least 1")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    try:
        strategy = resolve(args.strategy)
        # what `ttsload run` gives a cell process (allocator, stream=): the server tree inherits it from here
        os.environ.update(process_environment(strategy.option_map) or {})
        if args.stack == "flask":
            return server.serving(strategy, models.resolve(args.model), args.workers, threads=threads,
                                  preload=args.preload)
        stacks.check(args.stack, strategy, args.preload)
    except (StrategyError, ValueError) as exc:
        raise UsageError(f"serve: {exc}") from None
    return stacks.serving(args.stack, strategy, models.resolve(args.model), args.workers, threads=threads,
                          preload=args.preload)


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = serving(args)  # a stack that cannot serve the strategy is refused here, before anything starts
    print(f"serve: starting {args.stack} with {args.strategy} on {args.model}, {args.workers} worker(s)",
          file=sys.stderr, flush=True)
    from ttsload.strategies.base import StrategyError

    try:
        with server as live:
            api = "ttsload" if args.stack == "flask" else "openai"
            print(json.dumps({"url": f"http://127.0.0.1:{live.port}", "api": api, "pid": live.pid,
                              "worker_pids": live.worker_pids, "stack": args.stack, "strategy": args.strategy,
                              "model": args.model, "workers": args.workers, "preload": args.preload}), flush=True)
            while not stop.wait(1.0) and live.process.poll() is None:
                pass
            code = live.process.poll()
    except StrategyError as exc:  # the server tree failed while starting (a worker's load, the deadline)
        print(f"ttsload: error: serve: the {args.stack} server did not start: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    if code is not None and not stop.is_set():
        print(f"serve: the server exited by itself (exit code {code})", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK
