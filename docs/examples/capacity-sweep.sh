#!/usr/bin/env bash
# Capacity and capacity per GiB of three ways to serve one model with 2 workers, measured one after the other
# in one session (docs/serving.md): `ttsload serve` starts each stack, `ttsload client` sweeps Poisson rates
# against it until the latency target fails, reading the server tree's PSS; `ttsload report` compares them.
#   uvicorn-eager:        uvicorn --workers 2, each worker loads its own copy (the baseline users run)
#   gunicorn-preload-mmap: gunicorn --preload + 2 uvicorn workers, weights mmap'ed in the master, shared
#   loop-prefork-trim:    one event loop feeding 2 prefork workers over mmap'ed weights, malloc_trim per request
# Usage: docs/examples/capacity-sweep.sh [OUT]   (MODEL, SWEEP, TARGET, REQUESTS override the defaults;
#        CLIENT_ARGS adds client options, e.g. --allow-underruns)
# The default sweep starts low: on 2 cores a full-size vits request takes seconds, so 2 workers serve a
# fraction of a request per second. Start below the capacity you expect; a sweep whose first step already
# misses the target finds no capacity.
set -euo pipefail
model=${MODEL:-vits}
sweep=${SWEEP:-0.05:1.5:2}
target=${TARGET:-ttfa_p95=2s}
requests=${REQUESTS:-20}
read -r -a client_args <<< "${CLIENT_ARGS:-}"
out=${1:-results/capacity-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"

measure() {
    local name=$1 server
    shift
    ttsload serve --model "$model" --workers 2 "$@" > "$out/$name.server.json" 2> "$out/$name.server.log" &
    server=$!
    until [ -s "$out/$name.server.json" ]; do
        if ! kill -0 "$server" 2> /dev/null; then
            echo "capacity-sweep: the $name server did not start:" >&2
            tail -5 "$out/$name.server.log" >&2
            return 1
        fi
        sleep 1
    done
    read -r url pid < <(python -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["url"], d["pid"])' \
                            "$out/$name.server.json")
    ttsload client "$url" --sweep "$sweep" --target "$target" --requests "$requests" --server-pid "$pid" \
        --config "$name" --out "$out/$name" "${client_args[@]}" || echo "capacity-sweep: $name: the client failed (kept)" >&2
    kill -TERM "$server"
    wait "$server" || true
}

measure uvicorn-eager --stack uvicorn --strategy singleton
measure gunicorn-preload-mmap --stack gunicorn-uvicorn --preload --strategy mmap
measure loop-prefork-trim --stack loop-workers --strategy "prefork+mmap:trim=1"
# One workload, so the three client folders share a plan hash and merge into one folder, one report.
ttsload merge "$out/uvicorn-eager" "$out/gunicorn-preload-mmap" "$out/loop-prefork-trim" --out "$out/all"
ttsload report "$out/all"
