"""`ttsload report`: a results folder in, one HTML file plus CSV/Markdown tables and PNGs out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from ttsload.bench.analysis import serving
from ttsload.bench.cells import plain_or_safe
from ttsload.bench.errors import UsageError
from ttsload.bench.results import csv_cell, write_new
from ttsload.reports import faults, html, machines, plots, tables
from ttsload.reports.claims import seed_comparison
from ttsload.reports.claims_worker import worker_comparison
from ttsload.reports.load import RunData, load_run
from ttsload.reports.serving_plots import serving_plots

REPORT = "report.html"
METHODOLOGY = [
    "Every repetition of every cell (strategy × model × scenario) ran in a fresh Python process started by the "
    "harness, so imports, allocator state and threads never carry over between measurements.",
    "Cold start = from the moment the harness started the process to the first audio returned. Its phases: "
    "imports (interpreter + torch + Coqui), sha256 verification of the model files, model construction, reading "
    "the weights, and the first synthesis. Lazy loaders (mmap) pay their page faults in the first synthesis, so "
    "only the whole span is comparable between strategies.",
    "Memory is read from outside the measured processes, from `/proc/PID/smaps_rollup` of every process of the "
    "cell's tree, every {interval} s by a sampler thread in the harness, and once more after the last request "
    "(the steady reading in the tables). PSS (proportional set size) charges each shared page to the processes "
    "sharing it in equal parts, so summed PSS is the memory a tree really costs; USS counts only private pages; "
    "RSS counts shared pages in full in every process, so summed RSS over-counts.",
    "Physical limit: before its imports each cell copies 256 MiB in memory (memcpy, best of 3 passes) and, with a "
    "cold page cache, reads a 256 MiB scratch file evicted from the cache (best of 2); that time is left out of "
    "cold start. The weights rate is the loader's file bytes over the weights phase, also shown as a percentage of "
    "memcpy (warm) or of the read bandwidth (cold). It is an effective rate: a loader that maps the file (mmap) can "
    "pass 100 %, and in a cold cell the sha256 check has already read the files from the device (see the verify "
    "rate), so the weights phase reads from the page cache.",
    "Request latency is timed inside the serving process around one synthesis call; RTF = latency / seconds of "
    "audio produced. Requests use a fixed, seeded corpus of varied text lengths (see Run options).",
    "Medians over repetitions with distribution-free intervals (order statistics of the repetitions); a "
    "recommendation is stated only when the intervals do not overlap. Failed cells are kept with their reason and "
    "left out of the medians.",
]


def output_paths(folder: Path, out: Path | None) -> Path:
    """--out may name the HTML file or a folder to put it in; default DIR/report/report.html (never through a
    symlink: the results folder is untrusted, and its `report` could point anywhere)."""
    if out is None:
        if (folder / "report").is_symlink():
            raise UsageError(f"{folder / 'report'} is a symbolic link: not followed (remove it, or pass --out)")
        return folder / "report" / REPORT
    return out if out.suffix.lower() in (".html", ".htm") else out / REPORT


def build_report(folder: Path, out: Path | None = None) -> Path:
    data = load_run(folder)
    target = output_paths(folder, out)
    target.parent.mkdir(parents=True, exist_ok=True)
    long = tables.intervals(data)
    main = tables.main_table(long, data)
    failures = tables.failures_table(data)
    # Plots and the write-ups' comparisons draw one machine's timings: the first class when there are several.
    one = data.only_class(data.machine_classes[0]) if len(data.machine_classes) > 1 else data
    one_long = tables.intervals(one) if one is not data else long
    seeds = [{"model": m, "scenario": s, "comparison": seed_comparison(one, one_long, m, s)}  # single-process
             for m, s in dict.fromkeys(zip(one.ok["model"], one.ok["scenario"], strict=True)) if "@" not in s]
    scenario, phases = tables.scenario_table(data), tables.phase_table(one)
    fault_table = faults.faults_table(data)
    fault_claims = faults.claims_table(data, fault_table) if len(fault_table) else pd.DataFrame()
    families = tables.family_table(data)
    worker = worker_comparison(one) if len(one.ok) else None
    figures = plots.all_plots(one) if len(data.cells) else []  # a client-only folder has no cells to draw
    serving_section = _serving(data, target.parent)
    figures += serving_section["plots"]
    shown, scope = tables.without_constant_keys(main)
    sections = [(family, tables.without_constant_keys(part)[0]) for family, part in tables.by_family(main, data)]

    _write_table(target.parent / "medians", main, long)
    _write_table(target.parent / "failures", failures)
    for stem, frame in (("scenarios", scenario), ("phases", phases), ("families", families),
                        ("faults", fault_table), ("claims-faults", fault_claims)):
        if len(frame):
            _write_table(target.parent / stem, frame)
    if worker is not None:
        _write_table(target.parent / "claims-worker", worker["table"])
    for seed in seeds:
        _write_table(target.parent / plain_or_safe(f"claims-{seed['model']}-{seed['scenario']}"),
                     seed["comparison"].table)
    for figure in figures:
        if figure.png:
            write_new(target.parent / f"{figure.name}.png", figure.png)

    write_new(target, html.render({
        **_status(data), "folder": str(folder), "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "recommendations": tables.recommendations(long), "main_table": shown, "main_scope": scope,
        "machines": machines.side_by_side(long, data),
        "family_sections": sections,
        "coverage_note": tables.coverage_note(long), "failures": failures, "seeds": seeds, "plots": figures,
        "scenario_table": scenario, "phase_table": phases,
        "fault_table": fault_table, "fault_claims": fault_claims, "family_table": families, "worker": worker,
        "serving": serving_section,
        "environment": _environment(data), "model_rows": _models(data), "options": _options(data),
        "methodology": [p.format(interval=data.run.get("options", {}).get("interval", "?")) for p in METHODOLOGY],
    }).encode("utf-8"))
    return target


def _serving(data: RunData, folder: Path) -> dict[str, Any]:
    """The serving section (`ttsload client` records): capacity and step tables, the decision, its plots."""
    if not data.serving:
        return {"capacity": pd.DataFrame(), "steps": pd.DataFrame(), "notes": [], "plots": []}
    capacity, steps = serving.capacity_table(data.serving), serving.step_table(data.serving)
    _write_table(folder / "serving-capacity", capacity)
    _write_table(folder / "serving-steps", steps)
    return {"capacity": capacity, "steps": steps, "notes": serving.decision(data.serving),
            "plots": serving_plots(data.serving)}


def _write_table(stem: Path, frame: pd.DataFrame, numbers: pd.DataFrame | None = None) -> None:
    """Markdown for people; CSV for machines (the long, numeric form when there is one), its text cells
    escaped so that a spreadsheet never runs a name as a formula."""
    table = numbers if numbers is not None else frame
    table = table.rename(columns=csv_cell).apply(
        lambda column: column if pd.api.types.is_numeric_dtype(column) else column.map(csv_cell))
    # not with_suffix: a stem made from a model name may hold dots (`v1.2`), which it would cut at
    write_new(stem.parent / f"{stem.name}.csv", table.to_csv(index=False).encode("utf-8"))
    write_new(stem.parent / f"{stem.name}.md", (tables.to_markdown(frame) + "\n").encode("utf-8"))


def _status(data: RunData) -> dict[str, Any]:
    """The header: the cells' progress, or for a folder with no cell records (`ttsload client` alone) the
    servers it measured, and `cell_sections` False so the template leaves out the cell sections."""
    finished, unfinished = len(data.cells), len(data.unfinished)
    if finished == 0 and unfinished == 0:
        configs = list(dict.fromkeys(data.serving.summaries["config"]))
        status = f"{len(configs)} server(s) measured" if data.serving else "no serving step finished"
        return {"run_id": data.run.get("run_id", data.folder.name), "cell_sections": False, "configs": configs,
                "status_class": "complete" if data.serving else "with-failures", "status": status}
    failed = len(data.failed)
    complete = unfinished == 0 and bool(data.runs)
    status = f"{finished} cells finished" + (f", {failed} failed" if failed else "")
    status = status if complete else f"partial: {finished} of {finished + unfinished} planned cells finished"
    status_class = ("with-failures" if failed else "complete") if complete else "partial"
    return {"run_id": data.run.get("run_id", data.folder.name), "cell_sections": True,
            "status_class": status_class, "status": status,
            "models": list(dict.fromkeys(data.cells["model"])) or _planned_models(data),
            "strategies": data.strategies, "scenarios": list(dict.fromkeys(data.cells["scenario"])) or ["-"]}


def _planned_models(data: RunData) -> list[str]:
    return [m.get("name", "?") for m in data.run.get("options", {}).get("models", [])]


def _environment(data: RunData) -> list[tuple[str, Any]]:
    env = data.run.get("environment", {})
    threads = sorted({int(t) for t in data.cells["torch_threads"].dropna()})
    caches = sorted(set(data.cells["cache"].dropna())) or [data.run.get("options", {}).get("cache", "?")]
    packages = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items() if v)
    limits = env.get("cgroup_limits") or {}
    memory = limits.get("memory_bytes")
    memory_limit = f"{memory / 2**30:.1f} GiB memory" if memory else "no memory limit"
    return [("run ids", ", ".join(r.get("run_id", "?") for r in data.runs)),
            # classes are the recorded fingerprints, never the names machines were given (a CI runner label)
            ("machine classes (by fingerprint)", "; ".join(machines.class_labels(data).values()) or "-"),
            ("git sha", env.get("git_sha")),
            ("python", env.get("python")), ("packages", packages), ("platform", env.get("platform")),
            ("CPU", env.get("cpu")),
            ("cores (logical / physical)", f"{env.get('cores_logical')} / {env.get('cores_physical')}"),
            ("torch threads per process", ", ".join(map(str, threads)) or "-"),
            ("memory total", f"{env.get('memory_total_mb', 0) / 1024:.1f} GiB"),
            ("container limits (cgroup)", f"{limits.get('cpus') or 'no'} CPU quota, {memory_limit}"),
            ("load average at start", ", ".join(f"{x:.2f}" for x in env.get("load_average", []))),
            ("page cache", ", ".join(caches))]


def _models(data: RunData) -> pd.DataFrame:
    rows = []
    for model in data.run.get("options", {}).get("models", []):
        meta = model.get("meta", {})
        for name, digest in model.get("sha256", {}).items():
            size = meta.get("files", {}).get(name, {}).get("bytes")
            rows.append({"model": model.get("name"), "params (M)": f"{meta['params'] / 1e6:.2f}"
                         if meta.get("params") else "-", "file": name,
                         "size (MiB)": f"{size / 2**20:.2f}" if size else "-", "sha256": digest})
    return pd.DataFrame(rows)


def _options(data: RunData) -> list[tuple[str, Any]]:
    options = data.run.get("options", {})
    shown = ("strategy", "model", "requests", "repeat", "cache", "threads", "timeout", "interval", "corpus_seed")
    rows = [(key, options.get(key)) for key in shown if key in options]
    rows += [(f"strategy {name}", f"{s.get('topology')} + {s.get('loader')}")
             for name, s in (options.get("strategies") or {}).items()]
    texts = options.get("texts") or []
    if texts:
        rows.append(("texts", f"{len(texts)} texts, {min(map(len, texts))}–{max(map(len, texts))} characters"))
    return rows
