"""What a request looks like on the wire for each API the client speaks, and how to read its audio back.

- `openai`: OpenAI's `POST /v1/audio/speech` with `model`, `input`, `voice`, `response_format` (wav or pcm)
  and `stream` (the flag the self-hosted OpenAI-compatible servers read; OpenAI's own API streams anyway).
  `pcm` is OpenAI's raw 24 kHz 16-bit mono little-endian.
- `ttsload`: the http scenario's Flask app (bench.serving.app): `POST /tts` with `{"text", "seed"}`, answered
  with float32 samples and the rate in X-Sample-Rate.
- `json`: any server taking a JSON body: the user's template with `{text}` replaced by the text, escaped for a
  JSON string (so the template puts `{text}` inside quotes). The answer is a WAV (told by its RIFF header) or
  raw PCM of the format given on the command line (default 24 kHz 16-bit mono, the common self-hosted one).
A URL with a path is taken as the endpoint itself; a bare `http://host:port` gets the API's own path (`json`
has none: it needs the endpoint).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ttsload.bench.errors import UsageError
from ttsload.bench.loadgen.audio import AudioCounter, NotAudio, PcmFormat
from ttsload.strategies.base import request_seed

APIS = ("openai", "ttsload", "json")
PATHS = {"openai": "/v1/audio/speech", "ttsload": "/tts"}
OPENAI_PCM = PcmFormat(24000, 1, 2)
NOT_AUDIO_TYPES = ("application/json", "text/", "application/problem+json", "application/xml")
WAV_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")
PLACEHOLDER = "{text}"
# substituted when the template is checked: quotes, a backslash, a newline and non-ASCII must all stay valid JSON
AWKWARD_TEXT = 'He said "hi"\\ then\nleft — ü'


@dataclass(frozen=True)
class Api:
    name: str = "openai"
    model: str = "tts-1"
    voice: str = "alloy"
    response_format: str = "wav"
    stream: bool = True
    body_template: str | None = None  # the json API's request body, with PLACEHOLDER where the text goes
    pcm: PcmFormat = field(default=OPENAI_PCM)  # how a raw PCM answer (openai `pcm`, json API) is read

    def __post_init__(self) -> None:
        if self.name not in APIS:
            raise UsageError(f"--api: unknown API '{self.name}' (one of {', '.join(APIS)})")
        if self.response_format not in ("wav", "pcm"):
            raise UsageError(f"--format: '{self.response_format}' is not timed (wav or pcm)")
        if (self.name == "json") != (self.body_template is not None):
            raise UsageError("--body: the json API needs a body template, and only it takes one"
                             if self.name == "json" else f"--body: only --api json takes a body template, "
                             f"not --api {self.name}")
        if self.body_template is not None:
            check_template(self.body_template)

    def endpoint(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"URL '{url}' is not an http(s)://host[:port][/path] address")
        if parts.path in ("", "/") and self.name not in PATHS:
            raise UsageError(f"URL '{url}' has no path: --api {self.name} needs the endpoint itself "
                             "(e.g. http://host:port/synthesize)")
        return url if parts.path not in ("", "/") else url.rstrip("/") + PATHS[self.name]

    def body(self, text: str) -> Any:
        if self.body_template is not None:
            return json.loads(fill(self.body_template, text))
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
        if self.name == "json":  # the server's content type says WAV, or the body is sniffed for RIFF
            return AudioCounter(None if kind in WAV_TYPES else self.pcm, sniff=True,
                                refuse_text=not kind.startswith("audio/"))
        return AudioCounter(None if self.response_format == "wav" else self.pcm)


def fill(template: str, text: str) -> str:
    """The template with every PLACEHOLDER replaced by `text` escaped for the inside of a JSON string."""
    return template.replace(PLACEHOLDER, json.dumps(text, ensure_ascii=False)[1:-1])


def check_template(template: str) -> None:
    """UsageError (one line) unless the template has the placeholder and stays JSON with any text put in."""
    if PLACEHOLDER not in template:
        raise UsageError(f"--body: the template has no {PLACEHOLDER} where the text goes: {template[:80]!r}")
    try:
        json.loads(fill(template, AWKWARD_TEXT))
    except json.JSONDecodeError as exc:
        raise UsageError(f"--body: not valid JSON once {PLACEHOLDER} is filled in ({exc.msg} at column "
                         f"{exc.colno}; put {PLACEHOLDER} inside a JSON string, e.g. "
                         f"'{{\"input\": \"{PLACEHOLDER}\"}}')") from None
