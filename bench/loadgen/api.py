"""What a request looks like on the wire for each API the client speaks, and how to read its audio back.

- `openai`: OpenAI's `POST /v1/audio/speech` with `model`, `input`, `voice`, `response_format` (wav or pcm)
  and `stream` (the flag the self-hosted OpenAI-compatible servers read; OpenAI's own API streams anyway).
  `pcm` is OpenAI's raw 24 kHz 16-bit mono little-endian.
- `ttsload`: the http scenario's Flask app (bench.serving.app): `POST /tts` with `{"text", "seed"}`, answered
  with float32 samples and the rate in X-Sample-Rate.
A URL with a path is taken as the endpoint itself; a bare `http://host:port` gets the API's own path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ttsload.bench.errors import UsageError
from ttsload.bench.loadgen.audio import AudioCounter, NotAudio, PcmFormat
from ttsload.strategies.base import request_seed

APIS = ("openai", "ttsload")
PATHS = {"openai": "/v1/audio/speech", "ttsload": "/tts"}
OPENAI_PCM = PcmFormat(24000, 1, 2)
NOT_AUDIO_TYPES = ("application/json", "text/", "application/problem+json", "application/xml")


@dataclass(frozen=True)
class Api:
    name: str = "openai"
    model: str = "tts-1"
    voice: str = "alloy"
    response_format: str = "wav"
    stream: bool = True

    def __post_init__(self) -> None:
        if self.name not in APIS:
            raise UsageError(f"--api: unknown API '{self.name}' (one of {', '.join(APIS)})")
        if self.response_format not in ("wav", "pcm"):
            raise UsageError(f"--format: '{self.response_format}' is not timed (wav or pcm)")

    def endpoint(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"URL '{url}' is not an http(s)://host[:port][/path] address")
        return url if parts.path not in ("", "/") else url.rstrip("/") + PATHS[self.name]

    def body(self, text: str) -> dict[str, Any]:
        if self.name == "ttsload":
            return {"text": text, "seed": request_seed(text)}
        return {"model": self.model, "input": text, "voice": self.voice, "response_format": self.response_format,
                "stream": self.stream}

    def counter(self, headers: Mapping[str, str]) -> AudioCounter:
        """The audio reader for one response, given its headers; NotAudio if they already say it is not audio."""
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind.startswith(NOT_AUDIO_TYPES):
            raise NotAudio(f"response is {kind}, not audio")
        if self.name == "ttsload":
            rate = headers.get("x-sample-rate", "")
            if not rate.isdigit() or int(rate) == 0:
                raise NotAudio(f"response has no usable X-Sample-Rate header ({rate or 'none'})")
            return AudioCounter(PcmFormat(int(rate), 1, 4))
        return AudioCounter(None if self.response_format == "wav" else OPENAI_PCM)
