"""The serving section's plots: latency and goodput against offered rate per server config (capacity marked),
and the TTFA distribution per config. A config that did not stream says so in its legend."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from ttsload.bench.analysis.serving import ServingData
from ttsload.reports.plots import Plot, _png, _subplots, colours


def serving_plots(data: ServingData) -> list[Plot]:
    return [latency_against_rate(data), ttfa_cdf(data)]


def _label(data: ServingData, config: str) -> str:
    summary = data.summaries[data.summaries["config"] == config]
    streamed = len(summary) and summary["streaming"].iloc[-1] == True  # noqa: E712 - numpy's bool, or missing
    return config if streamed else f"{config} (NOT STREAMING)"


def latency_against_rate(data: ServingData) -> Plot:
    plot = Plot("serving_latency_rate", "Latency and goodput against the swept rate",
                "Open-loop steps of each config: TTFA p50 (dashed) and p95 (solid), total p95 (dotted), and goodput "
                "(share of requests meeting the target, no underrun); the vertical line marks each config's "
                "capacity, the grey line the target's bound and share.")
    steps = data.steps[data.steps["rate"].notna()]
    if not len(steps):
        plot.missing = "No open-loop steps: run `ttsload client URL --rates ...` or `--sweep START:FACTOR:MAX`."
        return plot
    configs = list(dict.fromkeys(steps["config"]))
    colour = colours(configs)
    figure, (latency, goodput) = _subplots(2, width=12.0, height=4.5)
    for config in configs:
        mine = steps[steps["config"] == config].sort_values("rate")
        rate = mine["rate"].to_numpy(dtype=float)
        c = colour[config]
        latency.plot(rate, mine["ttfa_p95_s"].to_numpy(dtype=float), "-o", color=c, label=_label(data, config))
        latency.plot(rate, mine["ttfa_p50_s"].to_numpy(dtype=float), "--", color=c)
        latency.plot(rate, mine["latency_p95_s"].to_numpy(dtype=float), ":", color=c)
        if mine["goodput"].notna().any():
            goodput.plot(rate, 100 * mine["goodput"].to_numpy(dtype=float), "-o", color=c, label=config)
        summary = data.summaries[data.summaries["config"] == config]
        if len(summary) and summary["capacity_rps"].notna().iloc[-1]:
            for ax in (latency, goodput):
                ax.axvline(float(summary["capacity_rps"].iloc[-1]), color=c, linewidth=1, alpha=0.6)
    bounds = _target_bounds(data)
    if bounds:
        latency.axhline(bounds[0], color="grey", linewidth=1)
        goodput.axhline(bounds[1], color="grey", linewidth=1)
    for ax in (latency, goodput):
        ax.set_xscale("log")
        ax.set_xlabel("swept rate (requests/s, log)")
        ax.set_xticks(sorted(set(steps["rate"].astype(float))))
    latency.set_ylabel("seconds (log)")
    latency.set_yscale("log")
    for axis in (latency.xaxis, latency.yaxis, goodput.xaxis):  # plain numbers: the plots draw text without math
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())
    goodput.set_ylabel("goodput (% of requests)")
    goodput.set_ylim(0, 102)
    latency.legend(fontsize=9)
    plot.png = _png(figure)
    return plot


def _target_bounds(data: ServingData) -> tuple[float, float] | None:
    """(bound seconds, share %) of the one target every sweep used; None when they differ or there is none."""
    targets = {(b, s) for b, s in zip(data.summaries["target_bound_s"], data.summaries["target_share"], strict=True)
               if b == b and s == s and b is not None and s is not None}  # noqa: PLR0124 - NaN is missing
    if len(targets) != 1:
        return None
    bound, share = next(iter(targets))
    return float(bound), 100 * float(share)


def ttfa_cdf(data: ServingData) -> Plot:
    plot = Plot("serving_ttfa_cdf", "Time to first audio (CDF) per config",
                "Every successful request of every step (the probe left out), from when it was due.")
    ok = data.requests[data.requests["ok"] == True]  # noqa: E712 - a column of objects
    if not len(ok):
        plot.missing = "No successful client requests."
        return plot
    configs = list(dict.fromkeys(ok["config"]))
    colour = colours(configs)
    figure, (ax,) = _subplots(1)
    for config in configs:
        ttfa = np.sort(ok[ok["config"] == config]["ttfa_s"].to_numpy(dtype=float))
        ax.step(ttfa, np.arange(1, len(ttfa) + 1) / len(ttfa), where="post", color=colour[config],
                label=f"{_label(data, config)} (n={len(ttfa)})", linewidth=1.8)
    ax.set_xlabel("time to first audio (s)")
    ax.set_ylabel("fraction of requests (0–1)")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower right", fontsize=9)
    plot.png = _png(figure)
    return plot
