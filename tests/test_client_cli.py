"""`ttsload client` in-process against a real streaming loopback server (tests/streaming_server.py): the records
it writes, the sweep's capacity, and one line (no traceback) for a broken server or a bad option."""

from __future__ import annotations

import json
import socket

import pytest

from tests.streaming_server import streaming_server
from ttsload.cli.main import main


def _records(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_a_sweep_writes_requests_steps_and_a_summary_with_capacity(tmp_path, capsys):
    with streaming_server() as url:
        code = main(["client", url, "--rates", "2,4", "--requests", "4", "--target", "ttfa_p95=60s",
                     "--config", "tiny", "--out", str(tmp_path / "out")])
    assert code == 0
    records = _records(tmp_path / "out")
    kinds = [r["type"] for r in records]
    assert kinds.count("run") == 1 and kinds.count("serving_step") == 2 and kinds.count("serving_summary") == 1
    assert kinds.count("serving_request") == 1 + 2 * 4  # the probe, then 4 per step
    summary = records[-1]
    assert summary["config"] == "tiny" and summary["capacity_rps"] == 4.0 and summary["reached"] is False
    for key in ("ttfa_p50_s", "ttfa_p95_s", "latency_p50_s", "latency_p95_s", "requests_ok", "requests_failed"):
        assert summary[key] is not None
    assert summary["streaming"] is True and summary["requests_failed"] == 0
    said = capsys.readouterr().err
    assert "capacity at ttfa_p95<=60s at least 4 req/s" in said and "generator CPU" in said


def test_clients_of_two_servers_under_one_workload_merge_and_another_workload_does_not(tmp_path):
    with streaming_server() as url:
        for name, path in (("streamed", ""), ("whole", "/whole")):
            assert main(["client", url + path, "--requests", "2", "--config", name,
                         "--out", str(tmp_path / name)]) == 0
        assert main(["client", url, "--requests", "3", "--config", "more", "--out", str(tmp_path / "more")]) == 0
    folders = [str(tmp_path / name) for name in ("streamed", "whole")]
    assert main(["merge", *folders, "--out", str(tmp_path / "both")]) == 0
    summaries = [r for r in _records(tmp_path / "both") if r["type"] == "serving_summary"]
    assert sorted(s["config"] for s in summaries) == ["streamed", "whole"]
    assert main(["merge", folders[0], str(tmp_path / "more"), "--out", str(tmp_path / "mixed")]) == 2


def test_a_closed_step_against_a_server_that_does_not_stream_says_so(tmp_path, capsys):
    with streaming_server() as url:
        assert main(["client", url + "/whole", "--concurrency", "2", "--requests", "3",
                     "--out", str(tmp_path / "out")]) == 0
    summary = _records(tmp_path / "out")[-1]
    assert summary["streaming"] is False and summary["requests_ok"] == 3
    assert "NOT STREAMING" in capsys.readouterr().err


@pytest.mark.parametrize("path, said", [("/fail", "http_500"), ("/json", "not_audio"), ("/garbage", "not_audio")])
def test_a_broken_server_gets_one_line_and_its_failed_request_is_kept(tmp_path, capsys, path, said):
    with streaming_server() as url:
        assert main(["client", url + path, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
    failed = [r for r in _records(tmp_path / "out") if r["type"] == "serving_request"]
    assert len(failed) == 1 and failed[0]["ok"] is False and failed[0]["error_kind"] == said


def test_a_refused_port_gets_one_line(tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["client", f"http://127.0.0.1:{port}", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "connect" in err and "Traceback" not in err


def _exit_code(argv: list[str]) -> int:
    """main's return code, or argparse's exit code for a flag it refused itself."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("argv, said", [
    (["--target", "ttfa_p95=soon"], "expected METRIC_pNN"), (["--sweep", "2:1:8"], "FACTOR > 1"),
    (["--rates", "4,2"], "rising rates"), (["--rate", "0"], "rate above 0"), ([], "not an http(s)://")])
def test_bad_options_get_one_line(tmp_path, capsys, argv, said):
    url = "localhost:8000" if not argv else "http://127.0.0.1:9"
    assert _exit_code(["client", url, *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_json_api_posts_the_template_and_times_raw_pcm_at_the_given_rate(tmp_path, capsys):
    template = tmp_path / "body.json"
    template.write_text('{"input": "{text}", "voice": "af"}')
    with streaming_server() as url:
        code = main(["client", url + "/pcm", "--api", "json", "--body", f"@{template}", "--pcm-rate", "16000",
                     "--requests", "2", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    timed = [r for r in _records(tmp_path / "out") if r["type"] == "serving_request"]
    assert len(timed) == 3 and all(r["ok"] and r["audio_s"] == pytest.approx(1.0) for r in timed)


def test_the_json_api_against_an_html_answer_gets_one_line(tmp_path, capsys):
    with streaming_server() as url:
        assert main(["client", url + "/html", "--api", "json", "--body", '{"t": "{text}"}',
                     "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "not_audio" in err and "text/html" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, said", [
    (["--api", "json"], "needs a body template"), (["--api", "json", "--body", '{"t": "x"}'], "no {text}"),
    (["--api", "json", "--body", '{"t": {text}}'], "not valid JSON"),
    (["--body", '{"t": "{text}"}'], "only --api json"),
    (["--api", "json", "--body", "@/nonexistent/body.json"], "cannot read the template file")])
def test_bad_json_api_options_get_one_line(tmp_path, capsys, argv, said):
    assert _exit_code(["client", "http://127.0.0.1:9/synth", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_client_against_the_real_flask_app_on_vits_tiny(tiny, tmp_path, capsys):
    """The ttsload API end to end: gunicorn + Flask serving vits-tiny, a closed step, the server tree's PSS."""
    from ttsload.bench.serving.server import serving

    with serving("singleton", tiny, workers=1) as live:
        code = main(["client", f"http://127.0.0.1:{live.port}", "--api", "ttsload", "--concurrency", "2",
                     "--requests", "4", "--server-pid", str(live.pid), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    records = _records(tmp_path / "out")
    timed = [r for r in records if r["type"] == "serving_request" and r["step"] != "probe"]
    assert len(timed) == 4 and all(r["ok"] and r["audio_s"] > 0 and r["status"] == 200 for r in timed)
    assert all(r["ttfa_s"] <= r["total_s"] for r in timed)
    summary = records[-1]
    assert summary["requests_ok"] == 4 and summary["pss_mb"] > 0
    assert summary["streaming"] is False  # the Flask app answers with the whole clip at once
