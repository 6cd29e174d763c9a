"""OpenAI's `POST /v1/audio/speech` as the asgi stacks serve it: the checked request, and the audio on the wire.

The body is OpenAI's (`model`, `input`, `voice`, `response_format`, `speed`) plus the fields the self-hosted
OpenAI-compatible servers read (`stream`, default true, as in Kokoro-FastAPI; `stream_format` "audio") and
ttsload's `seed` (default: the seed the in-process strategies use for that text, so a served clip has the
same digest as the in-process one). Every refusal is a guard.Rejected with a one-line reason, the same
statuses as the Flask app: 400 for a malformed body, 413 for a text over the limit.

Audio goes out as 16-bit PCM, the format both answers have in common:
- `wav`: a RIFF header first, then samples at the model's own rate. A streamed WAV cannot know its length
  when the header goes out, so its sizes say "unknown" (0xFFFFFFFF), as streaming TTS servers send them;
  an unstreamed one carries the real sizes.
- `pcm`: raw samples at 24 kHz, the rate OpenAI's API defines for `pcm`, resampled from the model's rate
  chunk by chunk (scipy's polyphase filter), so an OpenAI client reads the right duration.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ttsload.bench.http_limits import HttpLimits
from ttsload.bench.serving.guard import SEED_LIMIT, Rejected, json_object, short
from ttsload.strategies.base import request_seed

FIELDS = ("model", "input", "voice", "response_format", "speed", "stream", "stream_format", "instructions", "seed")
FORMATS = ("wav", "pcm")
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac")  # OpenAI's other formats: valid there, not served here
PCM_RATE = 24000  # OpenAI's pcm: 24 kHz, 16-bit signed little-endian, mono
UNKNOWN_SIZE = 0xFFFFFFFF


@dataclass(frozen=True)
class SpeechRequest:
    model: str
    text: str
    voice: str
    response_format: str
    stream: bool
    seed: int

    @property
    def media_type(self) -> str:
        return "audio/wav" if self.response_format == "wav" else "audio/pcm"


def parse_speech(raw: bytes, limits: HttpLimits) -> SpeechRequest:
    """The checked request from a body, or Rejected naming what is wrong with it."""
    body = json_object(raw, FIELDS, "model, input and voice")
    for name in ("model", "input", "voice"):
        if name not in body:
            raise Rejected(400, f"missing field {name!r}")
        if not isinstance(body[name], str):
            raise Rejected(400, f"{name} must be a string, got {type(body[name]).__name__}")
    text = body["input"]
    if len(text) > limits.max_text_chars:
        raise Rejected(413, f"input is {len(text)} characters, over the limit of {limits.max_text_chars}")
    if not text.strip():
        raise Rejected(400, "input is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(400, "input is not valid Unicode (a lone surrogate)") from None
    response_format = body.get("response_format", "wav")
    if response_format in OPENAI_FORMATS:
        raise Rejected(400, f"response_format {response_format!r} is not served here (served: {', '.join(FORMATS)})")
    if response_format not in FORMATS:
        raise Rejected(400, f"response_format must be one of {', '.join(FORMATS)}, got {short(repr(response_format))}")
    _check_speed(body.get("speed", 1.0))
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise Rejected(400, f"stream must be true or false, got {type(stream).__name__}")
    if body.get("stream_format", "audio") != "audio":
        raise Rejected(400, "stream_format must be 'audio' (server-sent events are not served)")
    if not isinstance(body.get("instructions", ""), str):
        raise Rejected(400, "instructions must be a string")
    seed = body.get("seed", request_seed(text))
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_LIMIT:
        raise Rejected(400, f"seed must be an integer in [0, 2**32), got {short(repr(seed))}")
    return SpeechRequest(body["model"], text, body["voice"], response_format, stream, seed)


def _check_speed(speed: object) -> None:
    """OpenAI's range is 0.25-4.0; the models here have no rate control, so only 1.0 is served (a server that
    resampled instead would change the pitch, and the measurement would not be of the speech asked for)."""
    if not isinstance(speed, (int, float)) or isinstance(speed, bool) or not math.isfinite(speed):
        raise Rejected(400, f"speed must be a number, got {short(repr(speed))}")
    if not 0.25 <= speed <= 4.0:
        raise Rejected(400, f"speed must be between 0.25 and 4.0, got {speed:g}")
    if speed != 1.0:
        raise Rejected(400, f"speed {speed:g} is not served: the models here synthesize at their own rate only")


def wav_header(sample_rate: int, samples: int | None = None) -> bytes:
    """A 16-bit mono RIFF/WAV header; `samples` None: a stream of unknown length."""
    data = UNKNOWN_SIZE if samples is None else samples * 2
    riff = UNKNOWN_SIZE if samples is None else 36 + data
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
            sample_rate * 2, 2, 16) + b"data" + struct.pack("<I", data))


def pcm16(wav: np.ndarray) -> bytes:
    """float samples in [-1, 1] as 16-bit signed little-endian (clipped, rounded)."""
    return (np.clip(wav, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class Encoder:
    """Turns one request's chunks into the bytes of its response_format, chunk by chunk."""

    def __init__(self, request: SpeechRequest, sample_rate: int):
        self.request, self.sample_rate = request, sample_rate
        self.rate = sample_rate if request.response_format == "wav" else PCM_RATE

    def head(self, samples: int | None = None) -> bytes:
        return wav_header(self.rate, samples) if self.request.response_format == "wav" else b""

    def chunk(self, wav: np.ndarray) -> bytes:
        if self.rate != self.sample_rate:
            from scipy.signal import resample_poly

            divisor = math.gcd(self.rate, self.sample_rate)
            wav = resample_poly(wav, self.rate // divisor, self.sample_rate // divisor)
        return pcm16(wav)
