"""A warm-up process before the first measured cell, recorded and never measured (pyperf's warm-up runs).

The first cell of a run otherwise pays for cold library files: the interpreter, torch and the family's
packages read from disk on first import, and the model's files on first read. A throwaway process imports
what the cells' loaders import and reads every file of every model once, so the first measured cell
starts from the page cache like the ones after it. A cold-cache run (`--cache cold`) drops the cache before
each cell anyway; the warm-up then only evens out the imports. A warm-up that fails is recorded and the run
goes on: it is never part of a result.

    python -P -m ttsload.bench.harness.warmup '[{"loader": "eager", "files": {...ModelFiles...}}, ...]'
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ttsload.bench.cells import Cell
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve

READ_BLOCK = 1 << 20
TIMEOUT_S = 600.0


def targets(cells: list[Cell]) -> list[dict[str, Any]]:
    """One entry per distinct (loader, model) among the cells, in their order."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for cell in cells:
        loader = resolve(cell.strategy).loader
        seen.setdefault((loader, str(cell.model.checkpoint)), {"loader": loader, "files": cell.model.to_json()})
    return list(seen.values())


def run(cells: list[Cell], threads: int | None) -> dict[str, Any]:
    """Warm up in a child process; the record says what it did, how long it took, and whether it failed."""
    wanted = targets(cells)
    record: dict[str, Any] = {"type": "warmup", "models": sorted({t["files"]["name"] for t in wanted}),
                              "loaders": sorted({t["loader"] for t in wanted})}
    start = time.monotonic()
    command = [sys.executable, "-P", "-m", __name__, json.dumps(wanted), str(threads or 0)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {**record, "status": "failed", "reason": f"did not finish in {TIMEOUT_S:.0f} s",
                "seconds": time.monotonic() - start}
    record["seconds"] = time.monotonic() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {**record, "status": "failed", "reason": last}
    return {**record, "status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def read_files(files: ModelFiles) -> int:
    """Read every file the model names once (into the page cache); returns the bytes read."""
    total = 0
    for path in dict.fromkeys([files.config, files.checkpoint, files.safetensors, *files.extras.values()]):
        if path is None or not Path(path).is_file():
            continue
        with open(path, "rb") as handle:
            while block := handle.read(READ_BLOCK):
                total += len(block)
    return total


def main(argv: list[str]) -> int:
    from ttsload.strategies.registry import make_loader

    wanted, threads = json.loads(argv[0]), int(argv[1]) or None
    imported: set[tuple[str, str]] = set()
    read = 0
    for target in wanted:
        files = ModelFiles.from_json(target["files"])
        if (target["loader"], files.family) not in imported:
            make_loader(target["loader"], files.family).runtime_phase(threads)
            imported.add((target["loader"], files.family))
        read += read_files(files)
    print(json.dumps({"read_bytes": read}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
