"""The report's serving section, from client runs against a real streaming loopback server."""

from __future__ import annotations

import pandas as pd

from tests.streaming_server import streaming_server
from ttsload.cli.main import main
from ttsload.reports.build import build_report


def test_the_serving_section_gives_capacity_flags_not_streaming_and_draws_its_plots(tmp_path):
    out = tmp_path / "results"
    with streaming_server() as url:
        common = ["--requests", "4", "--out", str(out)]
        assert main(["client", url, "--rates", "2,4", "--target", "ttfa_p95=60s", "--config", "streams", *common]) == 0
        assert main(["client", url + "/whole", "--rates", "2,4", "--target", "ttfa_p95=60s", "--config", "whole",
                     *common]) == 0
    report = build_report(out)
    capacity = pd.read_csv(report.parent / "serving-capacity.csv")
    assert list(capacity["config"]) == ["streams", "whole"]
    assert list(capacity["streaming"]) == ["yes", "NOT STREAMING"]
    assert all(capacity["capacity (req/s)"] == "≥ 4 (not reached)")
    steps = pd.read_csv(report.parent / "serving-steps.csv")
    assert len(steps) == 4 and set(steps["goodput"]) == {"100%"}
    html = report.read_text()
    assert "Serving: capacity at a latency target" in html and "whole does not stream" in html
    # a client-only folder has no cell records: no empty cell sections above the serving one
    assert "2 server(s) measured" in html and "streams, whole" in html
    for cell_only in ("cells finished", "Recommendation per scenario", "Medians per strategy", "Methodology",
                      "No finished cell yet"):
        assert cell_only not in html
    assert (report.parent / "serving_latency_rate.png").stat().st_size > 0
    assert (report.parent / "serving_ttfa_cdf.png").stat().st_size > 0


def test_a_sweep_whose_first_step_misses_has_no_capacity_and_says_where_it_missed(tmp_path):
    out = tmp_path / "results"
    with streaming_server() as url:  # the server's first audio comes after 50 ms
        assert main(["client", url, "--rates", "2,4", "--target", "ttfa_p95=10ms", "--requests", "3",
                     "--config", "slow", "--out", str(out)]) == 0
    report = build_report(out)
    capacity = pd.read_csv(report.parent / "serving-capacity.csv")
    assert list(capacity["capacity (req/s)"]) == ["< 2 (the first step missed)"]
    assert len(pd.read_csv(report.parent / "serving-steps.csv")) == 1  # the sweep stopped there


def test_a_client_run_whose_probe_failed_still_reports(tmp_path):
    out = tmp_path / "results"
    with streaming_server() as url:
        assert main(["client", url + "/fail", "--out", str(out)]) == 1
    report = build_report(out)  # the run record and the failed probe: no steps, no cells, no crash
    html = report.read_text()
    assert "Serving: capacity" not in html and "no serving step finished" in html
    assert "cells finished" not in html and "Medians per strategy" not in html
