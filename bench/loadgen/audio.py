"""Counting the audio in a response body as it streams: how many seconds each chunk of bytes carries.

A WAV body starts with a header (RIFF, fmt, maybe LIST, then data); those bytes are not audio, so time to
first audio is the arrival of the first byte after the `data` chunk's header, not the first byte of the body.
Raw PCM carries no header: its sample format comes from the API (OpenAI's `pcm` is 24 kHz 16-bit mono; the
ttsload Flask app sends float32 with an X-Sample-Rate header). A body that is not audio (JSON, HTML, a WAV
header that is not one) raises NotAudio with what was seen, so the request is recorded as failed, not timed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_HEADER_BYTES = 1 << 16  # a WAV whose data chunk has not started by then is not one we can time


class NotAudio(ValueError):
    """The response body is not the audio the API promised."""


@dataclass(frozen=True)
class PcmFormat:
    sample_rate: int
    channels: int = 1
    sample_bytes: int = 2

    @property
    def bytes_per_second(self) -> int:
        return self.sample_rate * self.channels * self.sample_bytes


class AudioCounter:
    """Feed the body's chunks in order; each call returns the audio seconds that chunk carried."""

    def __init__(self, pcm: PcmFormat | None):
        """`pcm` None: the body is a WAV file, its format read from its header; else raw samples of `pcm`."""
        self.format = pcm
        self._header = b"" if pcm is None else None
        self.header_bytes = 0

    def feed(self, data: bytes) -> float:
        if self._header is not None:
            self._header += data
            parsed = _parse_wav_header(self._header)
            if parsed is None:
                if len(self._header) > MAX_HEADER_BYTES:
                    raise NotAudio(f"no WAV data chunk in the first {MAX_HEADER_BYTES} bytes")
                return 0.0
            self.format, self.header_bytes = parsed
            data, self._header = self._header[self.header_bytes:], None
        assert self.format is not None
        return len(data) / self.format.bytes_per_second


def _parse_wav_header(head: bytes) -> tuple[PcmFormat, int] | None:
    """(format, bytes before the samples), None while more bytes are needed; NotAudio if it is not a WAV."""
    if len(head) >= 4 and head[:4] != b"RIFF":
        raise NotAudio(f"body starts with {head[:16]!r}, not a RIFF/WAV header")
    if len(head) < 12:
        return None
    if head[8:12] != b"WAVE":
        raise NotAudio("RIFF body is not WAVE")
    offset, fmt = 12, None
    while len(head) >= offset + 8:
        chunk_id, size = head[offset:offset + 4], struct.unpack_from("<I", head, offset + 4)[0]
        if chunk_id == b"data":
            if fmt is None:
                raise NotAudio("WAV data chunk before its fmt chunk")
            return fmt, offset + 8
        if chunk_id == b"fmt ":
            if len(head) < offset + 8 + 16:
                return None
            _, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, offset + 8)
            if not channels or not rate or bits % 8:
                raise NotAudio(f"WAV fmt chunk with {channels} channels, {rate} Hz, {bits} bits")
            fmt = PcmFormat(rate, channels, bits // 8)
        offset += 8 + size + (size & 1)  # chunks are padded to even sizes
        if offset > MAX_HEADER_BYTES:
            raise NotAudio(f"no WAV data chunk in the first {MAX_HEADER_BYTES} bytes")
    return None
