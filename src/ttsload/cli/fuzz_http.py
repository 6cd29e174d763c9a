"""`ttsload fuzz-http`: one bigger fuzz campaign against the http scenario's server, with its figures.

The same server (bench.serving.server.serving) and the same request generator as the fuzz test
(tests/test_http_fuzz.py), without the test's small bounds: prints bodies sent, statuses seen, the
number of 500s, and the server tree's PSS/RSS before and after. Exit 1 on any 500, or if the server
no longer synthesizes afterwards. Needs hypothesis (the `test` extra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ttsload.bench.errors import UsageError
from ttsload.bench.exitcodes import ExitCode


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ttsload.bench.http_limits import HttpLimits

    defaults = HttpLimits()
    fuzz = sub.add_parser("fuzz-http", help="send generated hostile requests to the http scenario's server on "
                                            "loopback; print statuses, 500s and server memory")
    fuzz.add_argument("--model", default="vits-tiny", help="fixture name or Coqui model path (default vits-tiny)")
    fuzz.add_argument("--strategy", default="singleton", help="strategy the server loads with (default singleton)")
    fuzz.add_argument("--workers", type=int, default=1, help="gunicorn workers (default 1)")
    fuzz.add_argument("--bodies", type=int, default=5000, help="generated requests to send (default 5000)")
    fuzz.add_argument("--budget", type=float, default=900.0, help="wall-time budget in seconds (default 900)")
    fuzz.add_argument("--seed", type=int, help="hypothesis seed, to repeat a campaign exactly")
    fuzz.add_argument("--max-text-chars", type=int, default=defaults.max_text_chars)
    fuzz.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    fuzz.add_argument("--queue", type=int, default=defaults.queue, help="admitted requests per worker")
    fuzz.add_argument("--request-timeout", type=float, default=defaults.request_timeout_s, help="seconds")
    fuzz.add_argument("--json", type=Path, help="also write the figures as JSON here")


def run(args: argparse.Namespace) -> int:
    try:
        from ttsload.bench.harness.http_fuzz import campaign, describe
    except ImportError as exc:
        raise UsageError(f"fuzz-http needs hypothesis ({exc}); install it: pip install 'ttsload[test]'") from None
    from ttsload.bench import models
    from ttsload.bench.http_limits import HttpLimits
    from ttsload.bench.serving.server import serving

    if args.bodies < 1 or args.workers < 1 or args.budget <= 0:
        raise UsageError("fuzz-http: --bodies and --workers must be at least 1, --budget above 0")
    try:
        limits = HttpLimits(max_text_chars=args.max_text_chars, max_body_bytes=args.max_body_bytes,
                            queue=args.queue, request_timeout_s=args.request_timeout)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    model = models.resolve(args.model)
    print(f"fuzz-http: {args.model} with {args.strategy}, {args.workers} worker(s), up to {args.bodies} requests "
          f"within {args.budget:g} s", file=sys.stderr)
    with serving(args.strategy, model, args.workers, limits) as server:
        tally = campaign(server.port, server.pid, args.bodies, args.budget, limits, seed=args.seed)
    print("\n".join(describe(tally, limits)))
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "strategy": args.strategy, "workers": args.workers,
                                         "limits": limits.to_json(), **tally.to_json()}, indent=1) + "\n")
    return ExitCode.OK if tally.server_errors == 0 and tally.alive_after else ExitCode.FAILED
