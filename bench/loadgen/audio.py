"""Counting the audio in a response body as it streams: how many seconds each chunk of bytes carries.

A WAV body starts with a header (RIFF, fmt, maybe LIST, then data); those bytes are not audio, so time to
first audio is the arrival of the first byte after the `data` chunk's header, not the first byte of the body.
Raw PCM carries no header: its sample format comes from the API (OpenAI's `pcm` is 24 kHz 16-bit mono; the
ttsload Flask app sends float32 with an X-Sample-Rate header; a `--api json` server's is given on the command
line). A server whose API does not say which it sends is sniffed: a body starting with RIFF is a WAV, anything
else raw PCM. A body that is not audio (JSON, HTML, a WAV header that is not one) raises NotAudio with what was
seen, so the request is recorded as failed, not timed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAX_HEADER_BYTES = 1 << 16  # a WAV whose data chunk has not started by then is not one we can time
SNIFF_BYTES = 4  # b"RIFF"
TEXT_STARTS = (b"{", b"[", b"<")  # JSON or HTML/XML: what a server answers instead of audio when it fails


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

    def __init__(self, pcm: PcmFormat | None, sniff: bool = False, refuse_text: bool = False):
        """`pcm` None: the body is a WAV file, its format read from its header; else raw samples of `pcm`.
        With `sniff`, a body starting with RIFF is read as a WAV and any other as raw `pcm`; with `refuse_text`
        too, a raw body starting like JSON or markup is NotAudio (a server whose content type did not say
        audio; a 16-bit sample rarely starts with those bytes, near-silent first samples never do)."""
        self._pcm, self._sniff, self._refuse_text = pcm, sniff and pcm is not None, refuse_text
        self.format = None if self._sniff else pcm
        self._header = b"" if self.format is None else None
        self.header_bytes = 0

    def feed(self, data: bytes) -> float:
        if self._header is not None and self._sniff:
            self._header += data
            if len(self._header) < SNIFF_BYTES:
                return 0.0
            self._sniff = False
            if self._header[:SNIFF_BYTES] != b"RIFF":
                if self._refuse_text and self._header.lstrip()[:1] in TEXT_STARTS:
                    raise NotAudio(f"body starts with {self._header[:16]!r}, not audio")
                self.format, data, self._header = self._pcm, self._header, None
            else:
                data, self._header = self._header, b""
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
