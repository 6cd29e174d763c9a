"""Quality of reduced-precision output: each strategy's audio against an fp32 strategy's, same text and seed.

Audio of repetition 0 is saved by the cell (outside the timed part); fp32 loaders are
bit-identical, so any exact strategy of the run can serve as the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ttsload.bench.analysis.stats import median
from ttsload.bench.cells import file_safe

AUDIO = "audio"


def audio_dir(out: Path, strategy: str, model: str) -> Path:
    safe = file_safe(f"{strategy}__{model}")
    return out / AUDIO / safe


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """Signal-to-noise ratio over the overlapping samples; inf when identical."""
    n = min(len(reference), len(other))
    noise = float(np.sum((reference[:n].astype(np.float64) - other[:n]) ** 2))
    signal = float(np.sum(reference[:n].astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(max(signal, 1e-30) / noise)


def compare(out: Path, run_id: str, cells: list[tuple[str, str, bool]]) -> list[dict[str, Any]]:
    """Quality records for (strategy, model, exact) cells that saved audio; empty without a reference."""
    records = []
    for model in dict.fromkeys(m for _, m, _ in cells):
        strategies = [(s, exact) for s, m, exact in cells if m == model and audio_dir(out, s, model).is_dir()]
        reference = next((s for s, exact in strategies if exact), None)
        if reference is None:
            continue
        ref_files = sorted(audio_dir(out, reference, model).glob("*.npy"))
        for strategy, _ in strategies:
            snrs, ratios, identical = [], [], True
            for ref_file in ref_files:
                other_file = audio_dir(out, strategy, model) / ref_file.name
                if not other_file.is_file():
                    continue
                want, got = np.load(ref_file), np.load(other_file)
                identical &= bool(np.array_equal(want, got))
                snrs.append(snr_db(want, got))
                ratios.append(len(got) / len(want))
            if not snrs:
                continue
            finite = [s for s in snrs if np.isfinite(s)]
            records.append({
                "type": "quality", "run_id": run_id, "model": model, "strategy": strategy, "reference": reference,
                "requests": len(snrs), "identical": identical,
                "snr_db_median": median(finite) if finite else None, "snr_db_min": min(finite) if finite else None,
                "length_ratio_median": median(ratios),
            })
    return records
