"""`ttsload run --list-cells`: the expanded plan as text, with each cell's shard and expected duration."""

from __future__ import annotations

from collections import defaultdict

from ttsload.bench.cells import CellKey
from ttsload.bench.sharding import Shard


def listing(plan_hash: str, keys: list[CellKey], shard_of: dict[str, int], durations: dict[str, float],
            shard: Shard | None, grouping: str) -> str:
    """One line per cell (shard, expected seconds or '-', cell id), then the expected total of each shard."""
    count = shard.count if shard else 1
    together = ("every repetition of a strategy x model x scenario in one shard (--shard-by config)"
                if grouping == "config" else "each repetition on its own (--shard-by cell)")
    lines = [f"# plan {plan_hash}: {len(keys)} cells, {len({k.group for k in keys})} configurations, "
             f"{count} shard{'s' if count > 1 else ''} (0-based); repetitions: {together}",
             f"# expected durations from the history store for {sum(k.id in durations for k in keys)} of "
             f"{len(keys)} cells ('-': unknown, weighed as the median known cell, or by count)",
             "shard\texpected_s\tcell"]
    totals: dict[int, list[float]] = defaultdict(list)
    for key in keys:
        seconds = durations.get(key.id)
        totals[shard_of[key.id]].append(seconds if seconds is not None else float("nan"))
        lines.append(f"{shard_of[key.id]}\t{f'{seconds:.1f}' if seconds is not None else '-'}\t{key.id}")
    for index in range(count):
        known = [s for s in totals[index] if s == s]
        unknown = len(totals[index]) - len(known)
        expected = f"{sum(known):.0f} s expected" + (f" + {unknown} cells of unknown duration" if unknown else "")
        lines.append(f"# shard {index}: {len(totals[index])} cells, "
                     + (expected if known else "durations unknown (balanced by count)")
                     + (" <- this shard" if shard and index == shard.index else ""))
    return "\n".join(lines) + "\n"
