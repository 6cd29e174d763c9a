"""`ttsload report` on a small real run of the tiny VITS (recorded, or made live: tests/recordings.py): tables,
plots, one self-contained HTML, a browser."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats as scipy_stats

from tests.conftest import cli
from tests.recordings import PARAMS, REPORT_STRATEGIES, made
from ttsload.bench.analysis.stats import median_interval
from ttsload.bench.cells import CellKey
from ttsload.bench.results import load_records
from ttsload.reports import tables

STRATEGIES = REPORT_STRATEGIES
PLOTS = ("cold_start_phases", "memory_by_strategy", "latency_cdf", "memory_per_request", "timeline")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run")


@pytest.fixture(scope="module", params=PARAMS)
def run_dir(request, tmp_path_factory) -> Path:
    """One real run: three strategies on the tiny model plus a corrupted copy of it (those cells fail)."""
    return made("report", request, tmp_path_factory.mktemp("report-run") / "root") / "run"


@pytest.fixture(scope="module")
def report(run_dir) -> Path:
    done = cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    path = run_dir / "report" / "report.html"
    assert f"report: {path}" in done.stdout
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class Links(HTMLParser):
    """Every URL-bearing attribute of a page, and the tags that could fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "action", "poster", "background") and value is not None:
                self.urls.append((tag, name, value))
            if tag == "img" and name == "src":
                self.images.append(value or "")


def decode_png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,"), uri[:60]
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1], validate=True)))
    image.load()
    return image


def test_every_strategy_and_scenario_appears_in_the_tables(run_dir, report):
    folder = report.parent
    medians = read_csv(folder / "medians.csv")
    seen = {(r["model"], r["scenario"], r["strategy"]) for r in medians}
    cells = read_csv(run_dir / "summary.csv")
    assert seen == {(r["model"], r["scenario"], r["strategy"]) for r in cells}
    assert {s for _, _, s in seen} == set(STRATEGIES)
    ok = [r for r in medians if r["model"] == "vits-tiny" and r["metric"] == "cold_start_s"]
    assert all(r["n"] == "2" and float(r["low"]) <= float(r["median"]) <= float(r["high"]) for r in ok)
    markdown = (folder / "medians.md").read_text()
    html = report.read_text()
    for strategy in STRATEGIES:
        assert f"| {strategy} " in markdown
        assert f"<td>{strategy}</td>" in html
    assert "Medians per strategy × scenario (single)</h2>" in html  # one scenario: named in the heading


def test_seed_table_is_rebuilt_from_the_run(report):
    seed = read_csv(report.parent / "claims-vits-tiny-single.csv")
    by_metric = {r["metric"]: r for r in seed}
    four = by_metric["four-process memory, summed PSS (MiB) — needs the workers scenario"]
    assert four["singleton (write-up: native load)"] == "not measured in this run"
    assert by_metric["quality vs fp32"]["mmap (write-up: async+mmap)"].startswith("bit-identical")
    quantized = by_metric["quality vs fp32"]["quantized (write-up: quantized+async+mmap)"]
    quality = [r for r in load_records(report.parent.parent, "quality") if r["strategy"] == "quantized"]
    assert quantized.startswith(f"SNR {quality[0]['snr_db_median']:.1f} dB")  # the run's own quality record
    summary = read_csv(report.parent.parent / "summary.csv")
    singleton = [float(r["cold_start_s"]) for r in summary if r["strategy"] == "singleton" and r["status"] == "ok"]
    low, high = min(singleton), max(singleton)
    assert by_metric["cold start (s)"]["singleton (write-up: native load)"] == (
        f"{np.median(singleton):.2f} [{low:.2f}–{high:.2f}]")
    assert "Where the write-up&#39;s numbers and ours differ" in report.read_text() or \
        "Where the write-up's numbers and ours differ" in report.read_text()


def test_each_plot_is_a_valid_image_and_absent_data_is_named(report):
    for name in PLOTS:
        image = Image.open(report.parent / f"{name}.png")
        image.verify()
        image = Image.open(report.parent / f"{name}.png").convert("L")
        assert image.width > 300 and image.height > 200
        assert np.asarray(image).std() > 10, f"{name}.png is blank"
    assert not (report.parent / "memory_against_workers.png").exists()
    assert "not in this run: needs the workers scenario" in report.read_text()


def test_html_is_one_self_contained_file(report):
    html = report.read_text()
    links = Links()
    links.feed(html)
    assert "http://" not in html and "https://" not in html
    assert all(value.startswith(("data:", "#")) for _, _, value in links.urls), links.urls
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(" not in html
    assert len(links.images) == len(PLOTS)
    for uri in links.images:
        assert decode_png(uri).format == "PNG"


def test_failed_cells_appear_with_their_reason(report):
    failures = read_csv(report.parent / "failures.csv")
    broken = [r for r in failures if r["model"].endswith("broken-model")]  # a path model is named by its path
    assert len(broken) == len(STRATEGIES) * 2
    assert all(r["status"] == "failed" and "sha256 mismatch" in r["reason"] for r in broken)
    html = report.read_text()
    assert "Failed or unfinished cells" in html and "sha256 mismatch" in html
    assert "0/2" in (report.parent / "medians.md").read_text()  # the broken model's rows: no successful cell


def test_a_truncated_run_still_reports_what_it_has(run_dir, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    text = (run_dir / "results.jsonl").read_bytes()
    cut = len(text) // 2
    while text[cut - 1:cut] == b"\n":  # make sure the cut is mid-line
        cut += 1
    (partial / "results.jsonl").write_bytes(text[:cut])
    done = cli("report", str(partial), "--out", str(tmp_path / "out.html"))
    assert done.returncode == 0, done.stderr[-3000:]
    html = (tmp_path / "out.html").read_text()
    assert "partial:" in html and "not finished" in html
    unfinished = [r for r in read_csv(tmp_path / "failures.csv") if r["status"] == "not finished"]
    finished = len(read_csv(tmp_path / "medians.csv"))
    assert unfinished and finished > 0


def test_report_of_a_folder_without_results_is_a_usage_error(tmp_path):
    done = cli("report", str(tmp_path))
    assert done.returncode == 2
    assert f"ttsload: error: no results.jsonl in {tmp_path}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_median_interval_matches_scipys_quantile_interval():
    rng = np.random.default_rng(0)
    for n in range(6, 40):
        values = rng.lognormal(size=n)
        _, low, high, coverage = median_interval(list(values))
        expected = scipy_stats.quantile_test(values, q=np.median(values), p=0.5).confidence_interval(0.95)
        assert (low, high) == (expected.low, expected.high) and coverage >= 0.95
    assert median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0, 0.75)  # too few for 95 %: [min, max], 75 %


def _long(rows: list[tuple[str, float, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "scenario": "s", "strategy": s, "metric": "pss_mb", "median": m, "low": lo,
                          "high": hi, "coverage": c, "n": 3} for s, m, lo, hi, c in rows])


def test_a_winner_is_named_only_beyond_the_intervals():
    apart = tables.recommendations(_long([("a", 100, 90, 110, 0.75), ("b", 200, 150, 250, 0.75)]))
    assert "memory: **a**" in apart[0]
    overlapping = tables.recommendations(_long([("a", 100, 90, 160, 0.75), ("b", 200, 150, 250, 0.75)]))
    assert "memory: no clear winner (a lowest, interval overlaps b)" in overlapping[0]
    weak = tables.recommendations(_long([("a", 100, 90, 110, 0.5), ("b", 200, 150, 250, 0.5)]))
    assert "memory: no call" in weak[0]


# --- the browser: headless Chromium renders the page from disk -------------------------------------------------

CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
  const marker = document.createElement("div");
  marker.id = "image-check";
  marker.textContent = `images=${images.length} broken=${broken}`;
  document.body.appendChild(marker);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180)


def image_check(page: Path, tmp_path: Path) -> tuple[int, int]:
    """Load a copy of the page with a checker script; returns (images, broken) as the browser saw them."""
    probe = tmp_path / f"probe-{page.stem}.html"
    probe.write_text(page.read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    done = chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri(), profile=tmp_path / "profile-dom")
    found = re.search(r'id="image-check">images=(\d+) broken=(\d+)<', done.stdout)
    assert found, f"the checker did not run: {done.stderr[-2000:]}"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")
def test_the_page_renders_in_a_real_browser(report, tmp_path):
    shot = tmp_path / "screenshot.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri(),
                    profile=tmp_path / "profile-shot")
    assert shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 20, "the screenshot is blank"
    assert (pixels < 128).mean() > 0.01, "hardly any dark pixels: no text or plots rendered"
    assert image_check(report, tmp_path) == (len(PLOTS), 0)
    # The check can fail: the same page with one image's bytes damaged shows one broken image.
    damaged = tmp_path / "damaged.html"
    damaged.write_text(report.read_text().replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAAA", 1))
    assert image_check(damaged, tmp_path) == (len(PLOTS), 1)


# --- two models of very different scale: the per-phase plot keeps each readable ------------------------------

def scaled_copy(run_dir: Path, target: Path, factor: float, name: str) -> Path:
    """The run plus a copy of its vits-tiny cells renamed `name` with every time multiplied by `factor`.

    A stand-in for a model whose phases are that many times longer (XTTS beside vits-tiny), without
    building one: only times change, so the plots must show both models at their own scale.
    """
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    scaled = []
    for record in map(json.loads, lines):
        model = CellKey.parse(record["cell"]).model if "cell" in record else record.get("model")
        if record.get("type") == "run" or model != "vits-tiny":
            continue
        if "cell" in record:
            record["cell"] = CellKey.parse(record["cell"])._replace(model=name).id
        if "model" in record:
            record["model"] = name
        for key, value in list(record.items()):
            if isinstance(value, float) and (key.endswith("_s") or key in ("t", "t_rel")):
                record[key] = value * factor
        scaled.append(json.dumps(record))
    target.mkdir(parents=True)
    (target / "results.jsonl").write_text("\n".join([*lines, *scaled]) + "\n")
    return target


def test_phase_plot_gives_each_model_its_own_scale_and_a_shared_share_axis(run_dir, tmp_path, monkeypatch):
    from ttsload.reports import plots
    from ttsload.reports.load import load_run

    data = load_run(scaled_copy(run_dir, tmp_path / "scaled", 20.0, "vits-tiny-x20"))
    figures = []
    monkeypatch.setattr(plots, "_png", lambda figure: figures.append(figure) or b"png")
    plot = plots.cold_start_phases(data, plots.colours(data.strategies))
    assert plot.png == b"png" and "own time axis" in plot.caption
    (tiny_s, tiny_share, big_s, big_share) = figures[0].axes
    assert "vits-tiny / single" in tiny_s.get_title() and "vits-tiny-x20 / single" in big_s.get_title()
    assert big_s.get_ylim()[1] == pytest.approx(20 * tiny_s.get_ylim()[1], rel=0.05)  # own axis each
    assert tiny_share.get_ylim() == big_share.get_ylim() == (0, 100)
    labels = {t.get_text() for t in big_s.texts}
    assert any(text.endswith(" s") for text in labels)  # absolute labels on the scaled panel


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")
def test_a_report_of_two_models_of_very_different_scale_builds_and_renders(run_dir, tmp_path):
    scaled = scaled_copy(run_dir, tmp_path / "scaled", 20.0, "vits-tiny-x20")
    done = cli("report", str(scaled))
    assert done.returncode == 0, done.stderr[-3000:]
    page = scaled / "report" / "report.html"
    html = page.read_text()
    assert "vits-tiny-x20" in html
    image = Image.open(scaled / "report" / "cold_start_phases.png").convert("L")
    assert np.asarray(image).std() > 10
    assert image_check(page, tmp_path) == (len(PLOTS), 0)
