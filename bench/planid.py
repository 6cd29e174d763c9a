"""The identity of a run's plan: one hash over what decides which cells run and how they are measured.

It covers the resolved options (strategies, models by content, requests, texts, repetitions, cache,
threads, deadlines, the expanded cell list) and the contents of the scenario scripts. It leaves out what
may differ between the machines measuring one plan: the shard, the machine name, folders and paths, and
whether history is kept. Shards of one plan carry the same hash; `ttsload merge` checks it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Not part of the plan: where it runs and where it writes (these differ between the shards of one plan), and,
# for `ttsload client`, which server it measures (its address, pid and label differ between the servers
# compared under one workload).
LOCAL_OPTIONS = frozenset({"out", "resume", "shard", "shard_by", "machine", "history", "no_history", "profile",
                           "list_cells", "command", "model", "scenario", "plan_hash", "shard_basis",
                           "shard_cells", "url", "server_pid", "config"})


def plan_hash(options: dict[str, Any]) -> str:
    """16 hex digits over the plan-defining part of a run record's options."""
    kept = {k: v for k, v in options.items() if k not in LOCAL_OPTIONS}
    kept["models"] = [{"name": m.get("name"), "family": m.get("family"), "sha256": m.get("sha256")}
                      for m in options.get("models", [])]
    kept["scenarios"] = [{"name": s.get("name"), "kind": s.get("kind"), "labels": s.get("labels"),
                          "script": _digest(Path(s["path"])) if s.get("path") else None}
                         for s in options.get("scenarios", [])]
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _digest(path: Path) -> str | None:
    """The script's bytes, so a scenario edited between shards is a different plan."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
