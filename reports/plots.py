"""Plots of a run (matplotlib, Agg, PNG): one colour per strategy in every plot, units on every axis.

A plot whose data this run does not hold (worker counts, a soak's leak slope) is not drawn: it comes
back with `missing` saying which scenario would provide it, and the report prints that instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace

import matplotlib

from ttsload.strategies.events import Event

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # a `$` in a strategy or model name is text, not mathtext
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ttsload.bench.analysis.stats import median_interval  # noqa: E402
from ttsload.reports.load import PHASE_COLUMNS, RunData  # noqa: E402

PHASE_LABELS = {"import_s": "imports", "verify_s": "verify sha256", "construct_s": "construct",
                "weights_s": "weights", "first_audio_s": "first synthesis",
                "other": "rest of the median total"}
PHASE_ALPHA = {"import_s": 1.0, "verify_s": 0.3, "construct_s": 0.75, "weights_s": 0.5, "first_audio_s": 0.9,
               "other": 0.15}
PHASE_HATCH = {"import_s": "", "verify_s": "", "construct_s": "//", "weights_s": "..", "first_audio_s": "xx",
               "other": ""}
TIMELINE_EVENTS = {Event.LIMITS: "limit probe done", Event.IMPORTS_DONE: "imports done",
                   Event.WEIGHTS_DONE: "weights loaded", Event.FIRST_AUDIO: "first audio",
                   Event.REQUESTS_DONE: "requests done"}
DPI = 100
# Panels per plot: past this a figure is unreadable and slow to draw (a 10^5-cell result set holds hundreds of
# model x scenario groups). The tables and medians.csv keep every group; the caption says what was left out.
MAX_GROUPS, MAX_TIMELINES = 6, 24


@dataclass
class Plot:
    name: str  # file stem
    title: str
    caption: str
    png: bytes | None = None
    missing: str = ""  # why it is not drawn


def colours(strategies: list[str]) -> dict[str, tuple[float, ...]]:
    """Fixed per run: a strategy keeps its colour in every plot (tab10, in the run's own order)."""
    palette = plt.get_cmap("tab10").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(strategies)}


def all_plots(data: RunData) -> list[Plot]:
    colour = colours(data.strategies)
    makers: list[Callable[[RunData, dict], Plot]] = [
        cold_start_phases, memory_by_strategy, memory_against_workers, latency_cdf, memory_per_request, timeline]
    data, note = _drawable(data)
    plots = []
    for make in makers:
        plot = make(data, colour)
        if plot.png is None and not plot.missing:
            plot.missing = "no successful cell in this run"
        plot.caption += note
        plots.append(plot)
    return plots


def _drawable(data: RunData) -> tuple[RunData, str]:
    """The first MAX_GROUPS model x scenario groups (all of them in a run of ordinary size), and a caption note."""
    groups = _groups(data)
    if len(groups) <= MAX_GROUPS:
        return data, ""
    keep = set(groups[:MAX_GROUPS])
    cells = data.cells[[pair in keep for pair in zip(data.cells["model"], data.cells["scenario"], strict=True)]]
    ids = set(cells["cell"])

    def only(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["cell"].isin(ids)] if "cell" in frame else frame

    kept = replace(data, cells=cells, samples=only(data.samples), processes=only(data.processes),
                   events=only(data.events), requests=only(data.requests), phases=only(data.phases))
    return kept, (f" Drawn for the first {MAX_GROUPS} of {len(groups)} model × scenario groups; the tables and "
                  f"medians.csv hold every group.")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _groups(data: RunData) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(data.ok["model"], data.ok["scenario"], strict=True)))


def _strategies_in(data: RunData, frame: pd.DataFrame) -> list[str]:
    present = set(frame["strategy"])
    return [s for s in data.strategies if s in present]


def _subplots(count: int, width: float = 9.0, height: float = 4.0, **kwargs) -> tuple[Figure, list]:
    figure, axes = plt.subplots(count, 1, figsize=(width, height * count), squeeze=False, **kwargs)
    return figure, list(axes[:, 0])


def _strategy_axis(ax: plt.Axes, names: list[str], colour: dict) -> None:
    """One tick per strategy, its label in the strategy's colour."""
    ax.set_xticks(range(len(names)), names)
    for label, name in zip(ax.get_xticklabels(), names, strict=True):
        label.set_color(colour[name])
    ax.set_xlabel("strategy")


def _group_cells(data: RunData, model: str, scenario: str) -> pd.DataFrame:
    return data.ok[(data.ok["model"] == model) & (data.ok["scenario"] == scenario)]


def _bars_per_strategy(data: RunData, colour: dict, draw: Callable[[plt.Axes, int, str, pd.DataFrame], None],
                       ylabel: str) -> Figure | None:
    """One panel per model x scenario, one bar per strategy (x-label in its colour); `draw` draws a bar."""
    groups = _groups(data)
    if not groups:
        return None
    figure, axes = _subplots(len(groups))
    for ax, (model, scenario) in zip(axes, groups, strict=True):
        cells = _group_cells(data, model, scenario)
        names = _strategies_in(data, cells)
        for x, name in enumerate(names):
            draw(ax, x, name, cells[cells["strategy"] == name])
        _strategy_axis(ax, names, colour)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{model} / {scenario}")
        ax.margins(y=0.08)
    return figure


def _whisker(ax: plt.Axes, x: float, values: pd.Series) -> tuple[float, float, float, float] | None:
    """The interval of the median as a black whisker at the median; returns (median, low, high, coverage)."""
    found = median_interval(values.dropna().tolist())
    if found:
        median, low, high, _ = found
        ax.errorbar(x, median, yerr=[[median - low], [high - median]], color="black", capsize=6, linewidth=1.2)
    return found


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _phase_medians(mine: pd.DataFrame) -> tuple[dict[str, float], tuple[float, float, float, float] | None]:
    """Median seconds of each phase, plus what the median cold start holds beyond them ("other"), and its interval."""
    phases = {p: float(mine[p].median()) if mine[p].notna().any() else 0.0 for p in PHASE_COLUMNS}
    total = median_interval(mine["cold_start_s"].dropna().tolist())
    phases["other"] = max(0.0, total[0] - sum(phases.values())) if total else 0.0
    return phases, total


def _stack(ax: plt.Axes, x: int, heights: dict[str, float], colour: tuple[float, ...], labels: dict[str, str],
           min_label: float) -> None:
    """Stacked phase segments of one bar; a segment at least `min_label` tall carries its label."""
    bottom = 0.0
    for phase, height in heights.items():
        ax.bar(x, height, bottom=bottom, color=colour, alpha=PHASE_ALPHA[phase], hatch=PHASE_HATCH[phase],
               edgecolor="white", linewidth=0.5)
        if height >= min_label and phase != "other":
            ax.text(x, bottom + height / 2, labels[phase], ha="center", va="center", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.75, "linewidth": 0})
        bottom += height


LABEL_SHARE = 0.06  # a phase is labelled when it is at least this share of its panel's height


def cold_start_phases(data: RunData, colour: dict) -> Plot:
    plot = Plot("cold_start_phases", "Cold start by phase",
                "One row per model × scenario, each on its own time axis, since models can differ many-fold. "
                "Left: the median of each phase in seconds, stacked, the median cold start (process start → first "
                "audio) printed above each bar, the whisker its interval over repetitions. Right: the same phases as "
                "a share of that median cold start, on one 0–100 % axis for every model, so phase mixes compare "
                f"across scales. A phase is labelled when it fills at least {LABEL_SHARE:.0%} of its panel.")
    groups = _groups(data)
    if not groups:
        return plot
    figure, rows = plt.subplots(len(groups), 2, figsize=(13, 4.2 * len(groups)), squeeze=False, layout="constrained",
                                gridspec_kw={"width_ratios": [3, 2]})
    for (seconds_ax, share_ax), (model, scenario) in zip(rows, groups, strict=True):
        cells = _group_cells(data, model, scenario)
        names = _strategies_in(data, cells)
        medians = {name: _phase_medians(cells[cells["strategy"] == name]) for name in names}
        top = max([max(sum(p.values()), t[2] if t else 0.0) for p, t in medians.values()] + [1e-9])
        for x, name in enumerate(names):
            phases, total = medians[name]
            whole = sum(phases.values()) or 1.0
            _stack(seconds_ax, x, phases, colour[name], {p: f"{_seconds(v)} s" for p, v in phases.items()},
                   LABEL_SHARE * top)
            _stack(share_ax, x, {p: 100 * v / whole for p, v in phases.items()}, colour[name],
                   {p: f"{100 * v / whole:.0f} %" for p, v in phases.items()}, 100 * LABEL_SHARE)
            if total:
                _whisker(seconds_ax, x, cells[cells["strategy"] == name]["cold_start_s"])
                seconds_ax.annotate(f"{_seconds(total[0])} s", (x, total[2]), xytext=(0, 4), textcoords="offset points",
                                    ha="center", va="bottom", fontsize=9, fontweight="bold")
        for ax in (seconds_ax, share_ax):
            _strategy_axis(ax, names, colour)
        seconds_ax.set_ylim(0, top * 1.15)
        seconds_ax.set_ylabel("time since process start (s)")
        seconds_ax.set_title(f"{model} / {scenario}: seconds (own scale)", fontsize=11)
        share_ax.set_ylim(0, 100)
        share_ax.set_ylabel("share of median cold start (%)")
        share_ax.set_title(f"{model} / {scenario}: share of cold start", fontsize=11)
    figure.legend(handles=[Patch(facecolor="grey", alpha=PHASE_ALPHA[p], hatch=PHASE_HATCH[p], label=label,
                                 edgecolor="#333333") for p, label in PHASE_LABELS.items()],
                  loc="outside right upper", fontsize=9, title="phase (shade)")
    plot.png = _png(figure)
    return plot


def memory_by_strategy(data: RunData, colour: dict) -> Plot:
    plot = Plot("memory_by_strategy", "Steady memory of the process tree",
                "PSS after the requests and malloc_trim(0) in every process, split into anonymous (solid) and "
                "file-backed (hatched, e.g. mapped weights), median over repetitions with its interval; "
                "○ the same before the trim (what a server without trims holds), ◆ USS, ▲ peak PSS during load. "
                "Cells without a trimmed reading (http) show the untrimmed one.")

    def draw(ax: plt.Axes, x: int, name: str, mine: pd.DataFrame) -> None:
        trimmed = "pss_trimmed_mb" in mine and mine["pss_trimmed_mb"].notna().any()
        suffix = "_trimmed_mb" if trimmed else "_mb"
        anon, file = mine[f"pss_anon{suffix}"].median(), mine[f"pss_file{suffix}"].median()
        ax.bar(x, anon, color=colour[name])
        ax.bar(x, file, bottom=anon, color=colour[name], alpha=0.45, hatch="//", edgecolor="white")
        _whisker(ax, x, mine[f"pss{suffix}"])
        if trimmed:
            ax.plot(x - 0.3, mine["pss_mb"].median(), "o", color=colour[name], markerfacecolor="white",
                    markeredgecolor="black")
        ax.plot(x + 0.3, mine["uss_mb"].median(), "D", color=colour[name], markeredgecolor="black")
        ax.plot(x + 0.3, mine["peak_pss_mb"].median(), "^", color=colour[name], markeredgecolor="black")

    figure = _bars_per_strategy(data, colour, draw, "memory (MiB)")
    if figure is not None:
        plot.png = _png(figure)
    return plot


def memory_against_workers(data: RunData, colour: dict) -> Plot:
    plot = Plot("memory_against_workers", "Total PSS and USS against worker count",
                "Summed over every process of the tree: PSS (solid) and USS (dashed), median per worker count; "
                "one panel per scenario that sweeps worker counts.")
    frame = data.ok.assign(base=data.ok["scenario"].str.split("@").str[0]) if len(data.ok) else data.ok
    swept = ([(model, base) for (model, base), group in frame.groupby(["model", "base"], sort=False)
              if group["workers"].nunique() >= 2] if len(frame) and data.has_column("workers") else [])
    if not swept:
        plot.missing = "not in this run: needs the workers scenario (cells at several worker counts)"
        return plot
    figure, axes = _subplots(len(swept))
    for ax, (model, base) in zip(axes, swept, strict=True):
        mine = frame[(frame["model"] == model) & (frame["base"] == base)]
        for name in _strategies_in(data, mine):
            by_workers = mine[mine["strategy"] == name].groupby("workers")
            ax.plot(by_workers["pss_total_mb"].median(), "o-", color=colour[name], label=f"{name} PSS")
            ax.plot(by_workers["uss_total_mb"].median(), "s--", color=colour[name], label=f"{name} USS")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("workers (processes serving requests)")
        ax.set_ylabel("memory summed over the tree (MiB)")
        ax.set_title(f"{model} / {base}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    plot.png = _png(figure)
    return plot


def _ok_requests(data: RunData) -> pd.DataFrame:
    keys = data.ok[["cell", "strategy", "model", "scenario", "repeat"]]
    # a switch cell's requests name the model each one asked for; the cell's own model column wins here
    return data.requests.drop(columns=[c for c in keys if c != "cell" and c in data.requests]).merge(keys, on="cell")


def latency_cdf(data: RunData, colour: dict) -> Plot:
    plot = Plot("latency_cdf", "Request latency (CDF)",
                "Every request of every successful repetition; dotted lines mark each strategy's p50 and p90.")
    requests = _ok_requests(data)
    groups = list(dict.fromkeys(zip(requests["model"], requests["scenario"], strict=True)))
    if not groups:
        return plot
    figure, axes = _subplots(len(groups))
    for ax, (model, scenario) in zip(axes, groups, strict=True):
        mine = requests[(requests["model"] == model) & (requests["scenario"] == scenario)]
        for name in _strategies_in(data, mine):
            latency = np.sort(mine[mine["strategy"] == name]["latency_s"].to_numpy(dtype=float))
            ax.step(latency, np.arange(1, len(latency) + 1) / len(latency), where="post", color=colour[name],
                    label=f"{name} (n={len(latency)})", linewidth=1.8)
            for q in (50, 90):
                ax.axvline(np.percentile(latency, q), color=colour[name], linestyle=":", linewidth=1)
        ax.set_xlabel("latency per request (s)")
        ax.set_ylabel("fraction of requests (0–1)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{model} / {scenario}")
        ax.legend(loc="lower right", fontsize=9)
    plot.png = _png(figure)
    return plot


def _memory_after_requests(data: RunData) -> pd.DataFrame:
    """USS of the tree after each request (per cell): the runner's reading taken right after it, or, for
    cells without those (sampler off, older runs), the first cadence reading after it ended."""
    exact = data.samples.dropna(subset=["after_request"])
    exact = exact.assign(index=exact["after_request"].astype(int))[["cell", "index", "uss_mb", "pss_mb"]]
    ends = data.events[data.events["event"] == Event.REQUEST_END][["cell", "index", "t_rel"]]
    ends = ends[~ends["cell"].isin(set(exact["cell"]))].sort_values("t_rel")
    samples = data.samples[["cell", "t_rel", "uss_mb", "pss_mb"]].dropna(subset=["uss_mb"]).sort_values("t_rel")
    nearest = (pd.merge_asof(ends, samples, on="t_rel", by="cell", direction="forward").drop(columns="t_rel")
               if len(ends) and len(samples) else exact.iloc[:0])
    points = pd.concat([exact, nearest], ignore_index=True)
    return points.merge(data.ok[["cell", "strategy", "model", "scenario"]], on="cell").dropna(subset=["uss_mb"])


def memory_per_request(data: RunData, colour: dict) -> Plot:
    plot = Plot("memory_per_request", "Memory against request index",
                "USS of the process tree right after each request (each repetition a line).")
    points = _memory_after_requests(data)
    if not len(points):
        return plot
    figure, axes = _subplots(1)
    ax = axes[0]
    for name in _strategies_in(data, points):
        for i, (_, cell) in enumerate(points[points["strategy"] == name].groupby("cell")):
            ax.plot(cell["index"], cell["uss_mb"], "-", color=colour[name], alpha=0.7, linewidth=1,
                    marker="o" if len(cell) <= 50 else None, markersize=3, label=name if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("request index (0 = first request)")
    ax.set_ylabel("USS of the tree (MiB)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    fitted = data.ok.dropna(subset=["leak_mb_per_1k"]) if data.has_column("leak_mb_per_1k") else data.ok.iloc[:0]
    if len(fitted):
        slopes = [f"{r['strategy']} ({r['scenario']}): {r['leak_mb_per_1k']:+.1f} MiB per 1000 requests "
                  f"[{r['leak_ci_low']:+.1f}, {r['leak_ci_high']:+.1f}]" for _, r in fitted.iterrows()]
        plot.caption += (" Drops are malloc_trim calls. Leak slopes (Theil–Sen over the memory held right after each"
                         " trim, 95 % interval): " + "; ".join(slopes) + ".")
    else:
        plot.caption += " No leak slope: not in this run (needs the soak scenario, which trims and fits)."
    plot.png = _png(figure)
    return plot


def timeline(data: RunData, colour: dict) -> Plot:
    plot = Plot("timeline", "Timeline of one repetition per strategy",
                "PSS of each process of the tree (thin: one line per process) and their sum (thick) from the "
                "moment the harness started the process; vertical lines mark phase events, ticks mark requests. "
                "Before the limit probe's line, the process holds the probe's copy buffers (left out of the peaks).")
    first = data.ok.sort_values("repeat").drop_duplicates(["strategy", "model", "scenario"])
    first = first[first["cell"].isin(set(data.samples["cell"]))].head(MAX_TIMELINES)
    if not len(first):
        return plot
    figure, axes = _subplots(len(first), height=2.8)  # own time axis each: cold starts differ a lot
    styles = dict(zip(TIMELINE_EVENTS, ((0, (1, 4)), "--", "-.", ":", "-"), strict=True))
    for ax, (_, cell) in zip(axes, first.iterrows(), strict=True):
        name = cell["strategy"]
        # the sampler's cheap readings carry RSS only (bench/harness/probes.py): PSS lines join the full ones
        samples = data.samples[data.samples["cell"] == cell["cell"]].dropna(subset=["pss_mb"]).sort_values("t_rel")
        processes = data.processes[data.processes["cell"] == cell["cell"]].dropna(subset=["pss_mb"]).sort_values(
            "t_rel")
        if processes["pid"].nunique() > 1:
            for _, process in processes.groupby("pid"):
                ax.plot(process["t_rel"], process["pss_mb"], color=colour[name], linewidth=0.8, alpha=0.6)
        ax.plot(samples["t_rel"], samples["pss_mb"], color=colour[name], linewidth=2)
        events = data.events[data.events["cell"] == cell["cell"]]
        for event, label in TIMELINE_EVENTS.items():
            for t in events[events["event"] == event]["t_rel"].head(1):
                ax.axvline(t, color="black", linestyle=styles[event], linewidth=0.9, label=label)
        for t in events[events["event"] == Event.REQUEST_END]["t_rel"]:
            ax.plot(t, 0, "|", color="black", markersize=10, clip_on=False)
        ax.set_ylabel("PSS (MiB)")
        ax.set_xlabel("time since the harness started the process (s)", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{name} · {cell['model']} / {cell['scenario']} · repetition {int(cell['repeat'])}",
                     color=colour[name], fontsize=10, loc="left")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    figure.tight_layout()
    plot.png = _png(figure)
    return plot
