"""The load side: streaming metrics, WAV accounting, arrival schedules, targets and the sweep, run against a
real streaming HTTP server (tests/streaming_server.py) and, in the integration tier, the Flask app."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import pytest

from tests.streaming_server import CHUNK_S, CHUNKS, FIRST_S, streaming_server, wav_header
from ttsload.bench.analysis.streaming import stream_metrics
from ttsload.bench.errors import UsageError
from ttsload.bench.loadgen.api import Api
from ttsload.bench.loadgen.audio import AudioCounter, NotAudio
from ttsload.bench.loadgen.schedule import Arrivals
from ttsload.bench.loadgen.sender import run_step
from ttsload.bench.loadgen.sweep import Target, geometric_rates, run_sweep, summarize


def test_ttfa_is_the_first_chunk_with_audio_and_a_late_first_chunk_is_not_streaming():
    streamed = stream_metrics([(0.01, 0.0), (0.2, 1.0), (0.5, 1.0), (0.9, 1.0)], total_s=1.0)
    assert streamed.ttfa_s == 0.2 and streamed.audio_s == 3.0 and streamed.chunks == 3
    assert streamed.streaming and streamed.underruns == 0
    whole = stream_metrics([(0.001, 0.0), (0.95, 3.0)], total_s=1.0)
    assert whole.ttfa_s == 0.95 and not whole.streaming
    assert stream_metrics([], total_s=1.0).ttfa_s is None


def test_underrun_is_a_gap_longer_than_the_audio_still_queued():
    # 0.1 s of audio at t=1, the next at t=1.5: the player ran dry at 1.1 and stalled 0.4 s
    metrics = stream_metrics([(1.0, 0.1), (1.5, 1.0), (2.0, 1.0)], total_s=2.0)
    assert metrics.underruns == 1 and metrics.stall_s == pytest.approx(0.4)
    assert metrics.max_gap_s == pytest.approx(0.5)
    # plenty queued: the same gaps are no underrun
    assert stream_metrics([(1.0, 2.0), (1.5, 1.0), (2.0, 1.0)], total_s=2.0).underruns == 0


def test_wav_header_bytes_are_not_audio_even_split_across_chunks():
    header, second = wav_header(), bytes(32000)  # 1 s at 16 kHz 16-bit mono
    counter = AudioCounter(None)
    assert counter.feed(header[:7]) == 0.0 and counter.feed(header[7:]) == 0.0
    assert counter.feed(second) == pytest.approx(1.0)
    assert counter.header_bytes == len(header)
    both = AudioCounter(None)
    assert both.feed(header + second[:16000]) == pytest.approx(0.5)
    with pytest.raises(NotAudio, match="not a RIFF"):
        AudioCounter(None).feed(b"<html>oops</html>")


def test_schedules_are_seeded_and_keep_their_rate_on_average():
    poisson = Arrivals("poisson", 20000, rate=8.0, seed=3)
    assert poisson.offsets() == Arrivals("poisson", 20000, rate=8.0, seed=3).offsets()
    assert poisson.offsets() != Arrivals("poisson", 20000, rate=8.0, seed=4).offsets()
    for arrivals in (poisson, Arrivals("gamma", 20000, rate=8.0, shape=0.25, seed=3)):
        offsets = arrivals.offsets()
        assert offsets[0] == 0.0 and len(offsets) == 20000
        assert (len(offsets) - 1) / offsets[-1] == pytest.approx(8.0, rel=0.05)

    def cv(offsets: list[float]) -> float:
        gaps = [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
        return statistics.pstdev(gaps) / statistics.fmean(gaps)

    assert cv(poisson.offsets()) == pytest.approx(1.0, rel=0.05)
    assert cv(Arrivals("gamma", 20000, rate=8.0, shape=0.25, seed=3).offsets()) == pytest.approx(2.0, rel=0.1)
    assert Arrivals("closed", 5, concurrency=2).offsets() == []
    with pytest.raises(UsageError, match="needs a rate"):
        Arrivals("poisson", 5)


@pytest.mark.parametrize("text, parsed", [("ttfa_p95=1.0s", ("ttfa", 95, 1.0)), ("total_p99=800ms", ("total", 99, 0.8)),
                                          ("ttfa_p50 <= 2", ("ttfa", 50, 2.0))])
def test_targets_parse(text, parsed):
    target = Target.parse(text)
    assert (target.metric, target.percentile, target.bound_s) == parsed


@pytest.mark.parametrize("text, said", [("ttfa=1s", "expected METRIC_pNN"), ("rtf_p95=1s", "not one of"),
                                        ("ttfa_p100=1s", "between 0 and 100"), ("ttfa_p95=0s", "above 0")])
def test_bad_targets_get_one_line(text, said):
    with pytest.raises(UsageError, match=said) as caught:
        Target.parse(text)
    assert "\n" not in str(caught.value)


def test_sweep_stops_at_the_first_failing_step_and_brackets_capacity():
    target = Target.parse("ttfa_p95=1s")
    fast = [{"ok": True, "ttfa_s": 0.1, "total_s": 0.5}] * 20
    slow = [{"ok": True, "ttfa_s": 2.0, "total_s": 3.0}] * 20
    seen = []

    def step(rate: float) -> dict:
        seen.append(rate)
        return summarize(fast if rate < 4 else slow, [0.0, 1.0], 1.0, 0.01, target)

    sweep = run_sweep([1, 2, 4, 8], target, step)
    assert seen == [1, 2, 4] and sweep.capacity_rps == 2 and sweep.bracket == (2, 4)
    assert geometric_rates(0.5, 2, 4) == [0.5, 1.0, 2.0, 4.0]
    with pytest.raises(UsageError, match="rise"):
        run_sweep([2, 1], target, step)


def test_one_underrun_or_failure_in_twenty_misses_a_p95_target_only_past_five_percent():
    target = Target.parse("ttfa_p95=1s")
    good = {"ok": True, "ttfa_s": 0.1, "total_s": 0.5}
    assert summarize([good] * 19 + [{"ok": False, "error_kind": "timeout"}], [0.0], 1.0, 0.0, target)["target_met"]
    bad = [good] * 18 + [{**good, "underruns": 1}, {"ok": False, "error_kind": "http_503"}]
    summary = summarize(bad, [0.0], 1.0, 0.0, target)
    assert not summary["target_met"] and summary["goodput"] == pytest.approx(0.9)
    assert summary["errors"] == {"http_503": 1}
    allowing = Target.parse("ttfa_p95=1s", underruns_allowed=True)  # the time alone: the underrun meets it
    summary = summarize(bad, [0.0], 1.0, 0.0, allowing)
    assert summary["goodput"] == pytest.approx(0.95) and summary["underruns"] == 1
    assert allowing.label == "ttfa_p95<=1s underruns allowed"


def _step(url: str, arrivals: Arrivals, api: Api | None = None) -> list[dict]:
    api = api or Api("openai")
    return asyncio.run(run_step(api.endpoint(url), api, arrivals, ["hello there"], timeout_s=30)).records


def test_streamed_response_is_timed_from_the_first_audio_byte_after_the_header():
    with streaming_server() as url:
        records = _step(url, Arrivals("closed", 3, concurrency=2))
    assert [r["ok"] for r in records] == [True] * 3
    for record in records:
        assert record["ttfa_s"] >= FIRST_S  # the header came at once; the audio only after FIRST_S
        assert record["audio_s"] == pytest.approx(CHUNKS * CHUNK_S)
        assert record["chunks"] >= 1 and record["status"] == 200


def test_whole_clip_response_is_not_streaming():
    with streaming_server() as url:
        records = _step(url + "/whole", Arrivals("closed", 2))
    assert all(r["ok"] and not r["streaming"] for r in records)


def test_open_loop_step_records_send_error_and_generator_cpu():
    api = Api("openai")
    with streaming_server() as url:
        run = asyncio.run(run_step(api.endpoint(url), api, Arrivals("poisson", 6, rate=20.0, seed=1), ["hi"], 30))
    assert len(run.records) == 6 and all(r["ok"] for r in run.records)
    assert all(r["send_error_s"] >= 0 for r in run.records)
    assert run.cpu_s > 0 and run.wall_s > 0


def test_an_arrival_is_never_sent_before_it_is_due():
    from ttsload.bench.loadgen.sender import WAKE_EARLY_S, until

    for ahead in (0.0, 0.0005, WAKE_EARLY_S / 2, WAKE_EARLY_S * 3):  # past, inside the 1 ms steps, both sleeps
        due = time.monotonic() + ahead
        asyncio.run(until(due))
        assert time.monotonic() >= due


def test_broken_servers_are_recorded_as_failed_with_kind_and_reason():
    with streaming_server() as url:
        failed = _step(url + "/fail", Arrivals("closed", 1))[0]
        as_json = _step(url + "/json", Arrivals("closed", 1))[0]
        garbage = _step(url + "/garbage", Arrivals("closed", 1))[0]
    assert (failed["ok"], failed["error_kind"], failed["status"]) == (False, "http_500", 500)
    assert "boom" in failed["error"]
    assert as_json["error_kind"] == "not_audio" and "application/json" in as_json["error"]
    assert garbage["error_kind"] == "not_audio"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = _step(f"http://127.0.0.1:{port}", Arrivals("closed", 2))
    assert [r["error_kind"] for r in refused] == ["connect", "connect"]


def test_real_sweep_against_a_streaming_server_stops_or_runs_through():
    api = Api("openai")

    def stepper(url: str, target: Target):
        def step(rate: float) -> dict:
            arrivals = Arrivals("poisson", 4, rate=rate, seed=0)
            run = asyncio.run(run_step(api.endpoint(url), api, arrivals, ["hi"], 30))
            return summarize(run.records, arrivals.offsets(), run.wall_s, run.cpu_s, target)
        return step

    with streaming_server() as url:
        strict = Target(metric="ttfa", percentile=95, bound_s=FIRST_S / 2)  # below the server's first-audio delay
        sweep = run_sweep([5.0, 10.0], strict, stepper(url, strict))
        assert len(sweep.steps) == 1 and sweep.capacity_rps is None and sweep.bracket == (None, 5.0)
        loose = Target.parse("ttfa_p95=60s")
        sweep = run_sweep([5.0, 10.0], loose, stepper(url, loose))
        assert sweep.capacity_rps == 10.0 and sweep.to_json()["reached"] is False


def test_digest_is_the_sha256_of_the_audio_after_the_header_when_asked():
    import hashlib

    from tests.streaming_server import RATE

    api = Api("openai")
    audio = bytes(int(RATE * 2 * CHUNK_S)) * CHUNKS
    with streaming_server() as url:
        plain = _step(url, Arrivals("closed", 1))[0]
        digested = asyncio.run(run_step(api.endpoint(url), api, Arrivals("closed", 1), ["hi"], 30,
                                        digest=True)).records[0]
    assert "audio_sha256" not in plain
    assert digested["audio_sha256"] == hashlib.sha256(audio).hexdigest()
