"""The client's `json` API: a user's body template filled in and checked, and the audio a JSON server sends back
(a WAV told by its RIFF header, or raw PCM of the given format) timed for real against the loopback streaming
server (tests/streaming_server.py); JSON or HTML instead of audio is a failed `not_audio` request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.streaming_server import CHUNK_S, CHUNKS, FIRST_S, RATE, streaming_server
from ttsload.bench.errors import UsageError
from ttsload.bench.loadgen.api import AWKWARD_TEXT, Api
from ttsload.bench.loadgen.audio import AudioCounter, NotAudio, PcmFormat
from ttsload.bench.loadgen.schedule import Arrivals
from ttsload.bench.loadgen.sender import run_step

TEMPLATE = '{"text": "{text}", "voice": "af", "options": {"speed": 1.0, "tags": ["{text}"]}}'
PCM16K = PcmFormat(RATE, 1, 2)


def _api(pcm: PcmFormat = PCM16K, template: str = TEMPLATE) -> Api:
    return Api("json", body_template=template, pcm=pcm)


def _step(endpoint: str, api: Api, count: int = 2) -> list[dict]:
    return asyncio.run(run_step(endpoint, api, Arrivals("closed", count), ["hello there"], timeout_s=30)).records


def test_every_placeholder_is_filled_with_the_text_escaped_and_the_server_gets_it_as_sent():
    body = _api().body(AWKWARD_TEXT)
    assert body == {"text": AWKWARD_TEXT, "voice": "af", "options": {"speed": 1.0, "tags": [AWKWARD_TEXT]}}
    with streaming_server() as url:
        echoed = httpx.post(url + "/echo", json=body, timeout=30).json()
    assert echoed == body


@pytest.mark.parametrize("template, said", [
    ('{"text": "hello"}', "no {text}"), ('{"text": {text}}', "not valid JSON"),
    ('{"text": "{text}"', "not valid JSON"), ("text={text}", "not valid JSON")])
def test_a_bad_template_is_one_line(template, said):
    with pytest.raises(UsageError, match=said) as caught:
        _api(template=template)
    assert "\n" not in str(caught.value)


def test_the_json_api_needs_a_template_and_an_endpoint_and_the_others_refuse_one():
    with pytest.raises(UsageError, match="needs a body template"):
        Api("json")
    with pytest.raises(UsageError, match="only --api json"):
        Api("openai", body_template=TEMPLATE)
    with pytest.raises(UsageError, match="needs the endpoint itself"):
        _api().endpoint("http://127.0.0.1:8000")
    assert _api().endpoint("http://127.0.0.1:8000/synth") == "http://127.0.0.1:8000/synth"


def test_a_streamed_wav_answer_is_timed_from_its_first_audio_byte():
    with streaming_server() as url:
        records = _step(url + "/v1/audio/speech", _api(PcmFormat(8000)))  # the WAV header's rate wins
    for record in records:
        assert record["ok"] and record["ttfa_s"] >= FIRST_S
        assert record["audio_s"] == pytest.approx(CHUNKS * CHUNK_S)


def test_a_raw_pcm_answer_is_counted_at_the_given_format():
    with streaming_server() as url:
        right = _step(url + "/pcm", _api(PCM16K))
        half_rate = _step(url + "/pcm", _api(PcmFormat(RATE // 2, 1, 2)), count=1)
    assert all(r["ok"] and r["ttfa_s"] >= FIRST_S for r in right)
    assert [r["audio_s"] for r in right] == pytest.approx([CHUNKS * CHUNK_S] * 2)
    assert half_rate[0]["audio_s"] == pytest.approx(2 * CHUNKS * CHUNK_S)  # the same bytes at half the rate


@pytest.mark.parametrize("path, said", [("/json", "application/json"), ("/html", "text/html"),
                                        ("/untyped-json", "not audio"), ("/garbage", "not a RIFF")])
def test_json_or_html_instead_of_audio_is_a_failed_not_audio_request(path, said):
    with streaming_server() as url:
        record = _step(url + path, _api(), count=1)[0]
    assert (record["ok"], record["error_kind"], record["status"]) == (False, "not_audio", 200)
    assert said in record["error"] and "\n" not in record["error"]


def test_sniffing_waits_for_four_bytes_and_keeps_them_as_audio():
    counter = AudioCounter(PCM16K, sniff=True)
    assert counter.feed(b"\x00\x01") == 0.0
    assert counter.feed(b"\x00\x01" * 3) == pytest.approx(8 / (RATE * 2))
    with pytest.raises(NotAudio):
        AudioCounter(PCM16K, sniff=True, refuse_text=True).feed(b'\n{"error": 1}')
