"""The asgi app's request checks and wire format, and its admission (no model, no server)."""

from __future__ import annotations

import asyncio
import json
import struct
import threading

import numpy as np
import pytest

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.guard import Rejected
from ttsload.bench.serving.speech import PCM_RATE, Encoder, parse_speech, wav_header
from ttsload.bench.serving.streams import Streams
from ttsload.strategies.audio import Audio, AudioStream
from ttsload.strategies.base import request_seed

LIMITS = HttpLimits(max_text_chars=50)
GOOD = {"model": "tts-1", "input": "Hello there.", "voice": "alloy"}


def parse(**changes):
    body = {**GOOD, **changes}
    return parse_speech(json.dumps({k: v for k, v in body.items() if v is not ...}).encode(), LIMITS)


def refused(raw: bytes) -> Rejected:
    with pytest.raises(Rejected) as caught:
        parse_speech(raw, LIMITS)
    return caught.value


def test_an_openai_body_gets_the_defaults_the_compatible_servers_use():
    asked = parse()
    assert (asked.text, asked.response_format, asked.stream) == ("Hello there.", "wav", True)
    assert asked.seed == request_seed("Hello there.")  # the in-process strategies' seed for that text
    assert parse(response_format="pcm", stream=False, seed=3, speed=1).media_type == "audio/pcm"


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"\xff", 400, "not UTF-8 JSON"),
    (b"[1]", 400, "JSON object"),
    (json.dumps({**GOOD, "extra": 1}).encode(), 400, "unknown field(s) extra"),
    (json.dumps({"model": "m", "voice": "v"}).encode(), 400, "missing field 'input'"),
    (json.dumps({**GOOD, "input": 5}).encode(), 400, "input must be a string"),
    (json.dumps({**GOOD, "input": "x" * 51}).encode(), 413, "51 characters, over the limit of 50"),
    (json.dumps({**GOOD, "input": "  "}).encode(), 400, "input is empty"),
    (json.dumps({**GOOD, "response_format": "mp3"}).encode(), 400, "not served here"),
    (json.dumps({**GOOD, "response_format": "ogg"}).encode(), 400, "one of wav, pcm"),
    (json.dumps({**GOOD, "speed": 9}).encode(), 400, "between 0.25 and 4.0"),
    (json.dumps({**GOOD, "speed": 1.5}).encode(), 400, "speed 1.5 is not served"),
    (json.dumps({**GOOD, "speed": True}).encode(), 400, "speed must be a number"),
    (json.dumps({**GOOD, "stream": "yes"}).encode(), 400, "stream must be true or false"),
    (json.dumps({**GOOD, "stream_format": "sse"}).encode(), 400, "server-sent events"),
    (json.dumps({**GOOD, "seed": -1}).encode(), 400, "seed must be an integer"),
    (b'{"model": "m", "input": NaN, "voice": "v"}', 400, "not UTF-8 JSON"),
])
def test_a_bad_body_is_refused_with_its_status_and_one_line(body, status, says):
    caught = refused(body)
    assert caught.status == status and says in caught.reason and "\n" not in caught.reason


def test_a_streamed_wav_header_says_unknown_sizes_and_a_whole_one_the_real_ones():
    streamed, whole = wav_header(22050), wav_header(22050, samples=100)
    assert len(streamed) == len(whole) == 44
    assert struct.unpack_from("<I", streamed, 40)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", whole, 40)[0] == 200 and struct.unpack_from("<I", whole, 24)[0] == 22050


def test_pcm_goes_out_at_openais_24_khz_and_wav_at_the_models_rate():
    second = np.zeros(22050, dtype=np.float32)
    assert len(Encoder(parse(response_format="pcm"), 22050).chunk(second)) == PCM_RATE * 2
    assert len(Encoder(parse(), 22050).chunk(second)) == 22050 * 2


def audio_stream(n: int, started: threading.Event, gate: threading.Event, made: list[int]) -> AudioStream:
    def chunks():
        started.set()
        for i in range(n):
            if i:  # the first chunk at once, each later one when the gate opens
                gate.wait(10)
            made.append(i)
            yield Audio(np.zeros(10, dtype=np.float32), 16000)

    return AudioStream(chunks(), "sentence")


def test_admission_refuses_past_its_queue_and_a_client_that_leaves_cancels_its_stream():
    async def scenario():
        streams = Streams(HttpLimits(queue=1), threads=1)
        started, gate, made = threading.Event(), threading.Event(), []
        kind, first, rest = await streams.open(lambda: audio_stream(50, started, gate, made))
        with pytest.raises(Rejected) as full:
            await streams.open(lambda: audio_stream(1, threading.Event(), threading.Event(), []))
        await rest.aclose()  # the client went away
        gate.set()
        for _ in range(200):
            if not streams.counts.running and streams.slots.acquire(blocking=False):
                streams.slots.release()
                break
            await asyncio.sleep(0.01)
        streams.close()
        return kind, first, full.value, streams.counts.to_json(), len(made)

    kind, first, full, counts, made = asyncio.run(scenario())
    assert kind == "sentence" and first is not None
    assert full.status == 503 and full.headers["Retry-After"] == "1"
    assert counts["cancelled"] == 1 and counts["refused"] == 1 and counts["running"] == 0
    assert made < 50  # stopped at the next chunk, not run to the end
