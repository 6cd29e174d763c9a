"""A cell's summary row (one line of summary.csv): every metric of the registry, read from its outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ttsload.bench.analysis.cellview import CellView
from ttsload.bench.analysis.metrics import REGISTRY

if TYPE_CHECKING:
    from ttsload.bench.cells import CellOutcome


def summarize(outcome: CellOutcome, run_id: str = "", cache: str = "") -> dict[str, Any]:
    view = CellView(outcome, run_id, cache)
    return {metric.column: metric.read(view) for metric in REGISTRY}
