"""A tiny real HTTP server for the load side's tests: streams known audio chunks with known delays.

Not a mock of the client: a stdlib ThreadingHTTPServer on loopback speaking chunked HTTP/1.1, so the client's
httpx stack, its timing and its parsing run for real. The path picks the behaviour:
- `/v1/audio/speech`: a 16 kHz 16-bit mono WAV header at once, then CHUNKS chunks of CHUNK_S seconds of audio,
  the first after FIRST_S, the next ones DELAY_S apart (defaults below; `?first=0.3` etc. override them).
- `/pcm`: the same audio as raw 16 kHz 16-bit mono PCM, no header, as application/octet-stream.
- `/whole`: the same WAV, but everything sent only after FIRST_S (a server that does not stream).
- `/fail`: 500 with a JSON body. `/json`: 200 with a JSON body. `/html`: 200 with an HTML page.
  `/untyped-json`: 200 application/octet-stream with a JSON body. `/garbage`: 200 audio/wav with bytes that
  are not a WAV.
Any path answers 400 to a non-empty body that is not JSON, as a real JSON API would, and `/echo` answers 200
with the body it got as JSON (so a test sees what the client sent).
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RATE = 16000
CHUNKS, CHUNK_S, FIRST_S, DELAY_S = 4, 0.25, 0.05, 0.01


def wav_header(rate: int = RATE) -> bytes:
    """A streaming WAV header (sizes unknown: 0xFFFFFFFF), with a LIST chunk before data, as some servers send."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    info = b"INFOISFT\x05\x00\x00\x00test\x00\x00"  # odd-sized sub-chunk, padded
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"LIST" + struct.pack("<I", len(info)) + info + b"data" + struct.pack("<I", 0xFFFFFFFF))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet in test output
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            json.loads(sent or b"null")
        except ValueError:
            return self._whole(400, "application/json", b'{"error": "body is not JSON"}')
        parts = urlsplit(self.path)
        query = {k: float(v[0]) for k, v in parse_qs(parts.query).items()}
        first, delay = query.get("first", FIRST_S), query.get("delay", DELAY_S)
        chunks, chunk = int(query.get("chunks", CHUNKS)), bytes(int(RATE * 2 * query.get("chunk", CHUNK_S)))
        if parts.path == "/fail":
            return self._whole(500, "application/json", b'{"error": "boom"}')
        if parts.path == "/json":
            return self._whole(200, "application/json", b'{"audio": "somewhere else"}')
        if parts.path == "/html":
            return self._whole(200, "text/html; charset=utf-8", b"<!DOCTYPE html><html>login first</html>")
        if parts.path == "/untyped-json":
            return self._whole(200, "application/octet-stream", b'  {"audio_url": "/files/1.wav"}')
        if parts.path == "/echo":
            return self._whole(200, "application/json", sent)
        if parts.path == "/garbage":
            return self._whole(200, "audio/wav", b"<html>not audio</html>" * 10)
        if parts.path == "/whole":
            time.sleep(first)
            return self._whole(200, "audio/wav", wav_header() + chunk * chunks)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream" if parts.path == "/pcm" else "audio/wav")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if parts.path != "/pcm":
            self._chunk(wav_header())
        time.sleep(first)
        for i in range(chunks):
            if i:
                time.sleep(delay)
            self._chunk(chunk)
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _whole(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet when the client hung up (it stops reading a body that is not audio, as it should): socketserver
        would print the reset's traceback into the captured stderr the CLI tests check for one line."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def streaming_server() -> Iterator[str]:
    """The server on a kernel-chosen loopback port; yields its base URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
