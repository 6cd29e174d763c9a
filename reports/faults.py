"""The report's "faults" section: fault × strategy from the faults scenario's cells, and the second seed
write-up's reliability claims next to what this run measured (or why it could not)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ttsload.reports.load import RunData

# (feature as the write-up claims it, the option or mechanism that implements it here, the drill that measures it)
CLAIMS = (
    ("hash and version checks before loading", "sha256 of every file vs the manifest (every loader)",
     "replace_checkpoint"),
    ("out-of-memory fallback (CUDA OOM → CPU)", "fallback=LOADER (CUDA → CPU path kept: reliability.cuda_to_cpu)",
     "oom"),
    ("3× exponential-backoff retry of a failed load", "retry=3:backoff=S", "hide_checkpoint"),
    ("liveness probe", "liveness=S (heartbeat separate from readiness; hung worker killed and replaced)",
     "sigstop"),
    ("leak sampling", "soak scenario: leak slope after malloc_trim (MiB / 1k requests)", None),
)


def _median(values: pd.Series) -> float | None:
    values = pd.to_numeric(values, errors="coerce").dropna()
    return float(values.median()) if len(values) else None


def _fmt(value: float | None, decimals: int = 2) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _short(text: str, chars: int = 90) -> str:
    return text if len(text) <= chars else text[: chars - 3] + "..."


def faults_table(data: RunData) -> pd.DataFrame:
    """One row per fault × strategy (× model): survived in how many repetitions, and the medians."""
    if "fault" not in data.cells or not data.cells["fault"].notna().any():
        return pd.DataFrame()
    cells = data.cells[data.cells["fault"].notna()]
    rows = []
    for (fault, strategy, model), group in cells.groupby(["fault", "strategy", "model"], sort=False):
        notes = [n for n in group.get("fault_note", pd.Series(dtype=str)).dropna().astype(str) if n]
        rows.append({
            "fault": fault, "strategy": strategy, "model": model,
            "survived": f"{int((group['survived'] == 'yes').sum())}/{len(group)}",
            "requests failed": _fmt(_median(group["requests_failed"]), 0),
            "requests retried": _fmt(_median(group["requests_retried"]), 0),
            "recovery (s)": _fmt(_median(group["recovery_s"])),
            "hang found after (s)": _fmt(_median(group.get("hang_detected_s", pd.Series(dtype=float)))),
            "load retries": _fmt(_median(group.get("load_retries", pd.Series(dtype=float))), 0),
            "fallbacks": _fmt(_median(group.get("load_fallbacks", pd.Series(dtype=float))), 0),
            "memory after (PSS MiB)": _fmt(_median(group.get("pss_total_mb", pd.Series(dtype=float))), 0),
            "what it said": notes[0] if notes else "",
        })
    return pd.DataFrame(rows)


def claims_table(data: RunData, faults: pd.DataFrame) -> pd.DataFrame:
    """The write-up's reliability features, each next to the drill that measured it in this run."""
    rows: list[dict[str, Any]] = []
    for claim, here, drill in CLAIMS:
        if drill is None:
            leak = _median(data.cells["leak_mb_per_1k"]) if "leak_mb_per_1k" in data.cells else None
            measured = f"leak {leak:+.1f} MiB/1k requests (median of soak cells)" if leak is not None \
                else "not in this run: `ttsload run --scenario soak`"
        else:
            found = faults[faults["fault"] == drill] if len(faults) else pd.DataFrame()
            measured = "; ".join(f"{r['strategy']}: survived {r['survived']}, failed {r['requests failed']}, "
                                 f"recovery {r['recovery (s)']} s" + (f" ({_short(r['what it said'])})"
                                                                       if r["what it said"] else "")
                                 for _, r in found.iterrows()) or f"not in this run (drill {drill})"
        rows.append({"claimed": claim, "here": here, "measured": measured})
    return pd.DataFrame(rows)
