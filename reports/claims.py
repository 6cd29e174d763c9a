"""Published claims rebuilt from measurements: the same rows as a write-up's table, our numbers, and
a note on where they differ.

The published figures are data (reports/published/*.toml, each with its source), quoted, never
expected, so the note can compare ratios: absolute numbers from another machine and another model
are not comparable, "mmap cuts memory by 58 %" is. Today: one Coqui loading write-up's table (coqui-loader-zh.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd
import tomllib

from ttsload.reports.load import RunData
from ttsload.reports.tables import BY_COLUMN, MIN_COVERAGE, fmt, fmt_interval


@dataclass(frozen=True)
class PublishedClaims:
    """A published table, as data (reports/published/*.toml, with its source): quotations, not expectations."""

    title: str
    setting: str
    columns: dict[str, tuple[str, ...]]  # the article's column (translated) -> our strategies standing for it
    rows: dict[str, tuple[Any, ...]]  # metric -> (value per column..., unit)


def read_published(name: str) -> dict[str, Any]:
    """reports/published/NAME.toml, shipped as package data of ttsload.reports."""
    return tomllib.loads((resources.files("ttsload.reports") / "published" / f"{name}.toml").read_text("utf-8"))


def load_claims(name: str) -> PublishedClaims:
    """A published table (columns x rows of values) from reports/published/NAME.toml."""
    data = read_published(name)
    return PublishedClaims(data["title"], data["setting"],
                           {c["name"]: tuple(c["ours"]) for c in data["column"]},
                           {row: (*entry["values"], entry["unit"]) for row, entry in data["row"].items()})


# Seed 001's section 4 (columns: native load, async+mmap, quantized+async+mmap).
SEED = load_claims("coqui-loader-zh")
SEED_SETTING, SEED_COLUMNS, SEED_CLAIMS = SEED.setting, SEED.columns, SEED.rows
NOT_MEASURED = "not measured in this run"


@dataclass
class SeedComparison:
    table: pd.DataFrame  # rows = the seed's metrics, columns = this run's strategies
    quoted: pd.DataFrame  # the seed's table as published
    mapping: dict[str, str]  # seed column -> our strategy
    notes: list[str]
    title: str = SEED.title


def seed_comparison(data: RunData, long: pd.DataFrame, model: str, scenario: str) -> SeedComparison:
    long = long[(long["model"] == model) & (long["scenario"] == scenario)]
    strategies = [s for s in data.strategies if s in set(long["strategy"])]
    mapping = {seed: next((s for s in ours if s in strategies), "") for seed, ours in SEED_COLUMNS.items()}
    cells = data.ok[(data.ok["model"] == model) & (data.ok["scenario"] == scenario)]
    rows = {
        "cold start (s)": _values(long, strategies, "cold_start_s"),
        "one-process memory, summed RSS (MiB)": _values(long, strategies, "rss_mb"),
        "one-process memory, PSS (MiB)": _values(long, strategies, "pss_mb"),
        **_four_process(data, model, strategies),
        "first-utterance latency (s, weights ready → first audio)": _values(long, strategies, "first_audio_s"),
        "quality vs fp32": _quality(data, cells, model, strategies, mapping),
    }
    labels = {s: s + "".join(f" (write-up: {seed})" for seed, ours in mapping.items() if ours == s)
              for s in strategies}
    table = pd.DataFrame(rows).T.rename(columns=labels).rename_axis("metric").reset_index()
    quoted = pd.DataFrame({seed: [f"{v[i]} {v[3]}" for v in SEED_CLAIMS.values()]
                           for i, seed in enumerate(SEED_COLUMNS)}, index=list(SEED_CLAIMS))
    quoted = quoted.rename_axis("metric (as published)").reset_index()
    notes = _notes(data, long, cells, model, mapping)
    quality = rows["quality vs fp32"]
    seed_mos = SEED_CLAIMS["quality"]
    notes.append(f"Quality: the write-up reports MOS {seed_mos[0]} → {seed_mos[2]} for quantization (20 listeners, "
                 "not repeatable); measured here against the fp32 output for the same seeded texts: "
                 + "; ".join(f"{s}: {quality[s]}" for s in mapping.values() if s and s in quality) + ".")
    return SeedComparison(table, quoted, mapping, notes)


def _values(long: pd.DataFrame, strategies: list[str], column: str) -> dict[str, str]:
    rows = long[long["metric"] == column].set_index("strategy")
    decimals = BY_COLUMN[column].decimals
    return {s: fmt_interval(rows.loc[s], decimals) if s in rows.index else "-" for s in strategies}


def _four_process(data: RunData, model: str, strategies: list[str]) -> dict[str, dict[str, str]]:
    """Summed RSS and summed PSS of four workers, from a workers scenario when the run has one."""
    rss_row, pss_row = "four-process memory, summed RSS (MiB)", "four-process memory, summed PSS (MiB)"
    if not data.has_column("workers") or not (data.ok["workers"] == 4).any():
        needs = " — needs the workers scenario"
        return {rss_row + needs: dict.fromkeys(strategies, NOT_MEASURED),
                pss_row + needs: dict.fromkeys(strategies, NOT_MEASURED)}
    four = data.ok[(data.ok["model"] == model) & (data.ok["workers"] == 4)]
    out: dict[str, dict[str, str]] = {rss_row: {}, pss_row: {}}
    for row, column in ((rss_row, "rss_sum_mb"), (pss_row, "pss_total_mb")):
        for strategy in strategies:
            values = four[four["strategy"] == strategy][column].dropna() if column in four else []
            out[row][strategy] = _interval_text(list(values), 0) if len(values) else "no 4-worker cell"
    return out


def _interval_text(values: list[float], decimals: int) -> str:
    from ttsload.bench.analysis.stats import median_interval

    median, low, high, _ = median_interval(values)
    return fmt_interval({"median": median, "low": low, "high": high, "n": len(values)}, decimals)


def _quality(data: RunData, cells: pd.DataFrame, model: str, strategies: list[str],
             mapping: dict[str, str]) -> dict[str, str]:
    """SNR from quality records when the run wrote them; else whether the output bits equal the reference's."""
    reference = next(iter(mapping.values())) or (strategies[0] if strategies else "")
    quality = (data.quality[data.quality["model"] == model].drop_duplicates("strategy", keep="last")
               .set_index("strategy") if len(data.quality) else None)  # the latest record per strategy
    digests = cells.groupby("strategy")["output_digest"].agg(lambda d: set(d.dropna()))
    out = {}
    for strategy in strategies:
        if quality is not None and strategy in quality.index:
            q = quality.loc[strategy]
            out[strategy] = ("bit-identical to fp32" if bool(q["identical"]) else
                             f"SNR {q['snr_db_median']:.1f} dB (min {q['snr_db_min']:.1f}), "
                             f"length ×{q['length_ratio_median']:.2f}")
        elif strategy == reference:
            out[strategy] = "fp32 reference"
        elif strategy in digests and reference in digests and digests[strategy] and digests[reference]:
            same = digests[strategy] == digests[reference]
            out[strategy] = ("bit-identical (same audio digest)" if same
                             else "audio differs (SNR not measured in this run)")
        else:
            out[strategy] = "not measured"
    return out


def _median(long: pd.DataFrame, strategy: str, column: str) -> pd.Series | None:
    rows = long[(long["strategy"] == strategy) & (long["metric"] == column) & long["median"].notna()]
    return rows.iloc[0] if len(rows) else None


def _change(long: pd.DataFrame, strategy: str, base: str, column: str) -> tuple[float, str] | None:
    """Relative change of strategy vs base (medians), and what the intervals say about it."""
    ours, ref = _median(long, strategy, column), _median(long, base, column)
    if ours is None or ref is None or not ref["median"]:
        return None
    if min(ours["coverage"], ref["coverage"]) < MIN_COVERAGE:
        return ours["median"] / ref["median"] - 1, "too few repetitions to tell"
    apart = ours["high"] < ref["low"] or ours["low"] > ref["high"]
    return ours["median"] / ref["median"] - 1, "" if apart else "intervals overlap: no clear difference"


def _say(change: tuple[float, str] | None) -> str:
    if change is None:
        return "not measured here"
    value, caveat = change
    return f"{value:+.0%}" + (f" ({caveat})" if caveat else "")


def _notes(data: RunData, long: pd.DataFrame, cells: pd.DataFrame, model: str, mapping: dict[str, str]) -> list[str]:
    base, mmap, quant = mapping.values()
    meta = next((m.get("meta", {}) for m in data.run.get("options", {}).get("models", []) if m.get("name") == model),
                {})
    size = sum(f.get("bytes", 0) for name, f in meta.get("files", {}).items() if name.endswith(".pth")) / 2**20
    env = data.run.get("environment", {})
    notes = [f"Setting: the write-up measured {SEED_SETTING}; this run measured `{model}` "
             f"({(meta.get('params') or 0) / 1e6:.1f} M params, {size:.0f} MiB checkpoint) on {env.get('cpu', '?')} "
             f"with {env.get('cores_logical', '?')} cores. Absolute numbers do not transfer; the changes against the "
             f"fp32 baseline (`{base or 'none'}`) do."]
    seed = {row: values[:3] for row, values in SEED_CLAIMS.items()}
    for row, column in (("cold start", "cold_start_s"), ("one-process memory", "pss_mb"),
                        ("first-utterance latency", "first_audio_s")):
        claims = [f"{name} {seed[row][i] / seed[row][0] - 1:+.0%}" for i, name in ((1, "mmap"), (2, "quantized"))]
        ours = [f"{s} {_say(_change(long, s, base, column))}" for s in (mmap, quant) if s]
        notes.append(f"{row.capitalize()}: the write-up claims {', '.join(claims)}; measured here: "
                     f"{', '.join(ours) or 'not measured'}.")
    notes += _why(long, cells, base, mmap, quant)
    four, one = seed["four-process memory"], seed["one-process memory"]
    ratios = ", ".join(f"{f / o:.1f}×" for f, o in zip(four, one, strict=True))
    notes.append(f"Four-process memory: the write-up's figures are {ratios} its one-process figures, i.e. per-process "
                 "memory multiplied by four, which counts every shared page (mapped weights, libraries) four times. "
                 "Summed PSS charges each shared page once in total; "
                 + ("compare the two rows above." if "workers" in data.cells else
                    "this run has no workers scenario, so both stay unmeasured."))
    return notes


def _why(long: pd.DataFrame, cells: pd.DataFrame, base: str, mmap: str, quant: str) -> list[str]:
    """Reasons read off this run's own data: phase shares, file-backed memory, converted parameters."""
    out = []
    phases = {c: _median(long, base, c) for c in ("cold_start_s", "first_audio_s")}
    weights = cells[cells["strategy"] == base]["weights_s"].median() if base else None
    imports = cells[cells["strategy"] == base]["import_s"].median() if base else None
    if phases["cold_start_s"] is not None and weights is not None and imports is not None:
        total = phases["cold_start_s"]["median"]
        first = phases["first_audio_s"]["median"] if phases["first_audio_s"] is not None else float("nan")
        out.append(f"What cold start is made of here: in `{base}` reading the weights takes "
                   f"{weights / total:.0%} of cold start, imports {imports / total:.0%} and the first synthesis "
                   f"{first / total:.0%}. A loader can only shrink its own phase; mmap's lazy page faults move into "
                   "the first synthesis.")
    if mmap:
        mapped = cells[cells["strategy"] == mmap]
        out.append(f"`{mmap}`: {mapped['pss_file_mb'].median():.0f} MiB of its {mapped['pss_mb'].median():.0f} MiB "
                   "PSS is file-backed (mapped checkpoint pages): still in memory once touched, but shareable "
                   "between processes and reclaimable by the kernel.")
    if quant:
        q = cells[cells["strategy"] == quant]
        int8, bf16 = q["int8_fraction"].median(), q["bf16_fraction"].median()
        if pd.notna(int8) or pd.notna(bf16):
            out.append(f"`{quant}`: dynamic int8 quantization converted {fmt(int8 * 100, 0)} % of the parameters "
                       f"and {fmt(bf16 * 100, 0)} % run in bf16; int8 can only shrink memory where layers are "
                       "converted.")
    return out
