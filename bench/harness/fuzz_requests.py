"""Hostile requests for the http app, as hypothesis strategies: the generator the fuzz test and
`ttsload fuzz-http` share.

A request is built as raw bytes (request line, headers, body), so nothing a client library would
refuse or fix up is out of reach: odd methods and paths, bad or missing Content-Type, extra headers
with odd bytes, a Content-Length that is missing, too small, too large (a truncated body), or huge
(10**12: the app must refuse it from the header alone), chunked bodies. Bodies are JSON objects with
missing, extra and ill-typed fields (huge integers, floats, nested values, odd Unicode, lone
surrogates, over-long texts), other JSON, deep nesting, other encodings, truncated JSON and random
bytes. Texts that would really be synthesized stay short, so synthesis never dominates a run.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from functools import lru_cache

from hypothesis import strategies as st

from ttsload.bench.http_limits import HttpLimits

WORDS = ("hello", "world", "the", "quick", "voice", "test", "a", "of", "speech", "model", "loading")
CONTENT_TYPES = ("application/json", "application/json; charset=utf-8", "application/JSON", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                 "application/json; charset=latin-1", "application/json; charset=utf-16", "*/*", "json", "")
METHODS = ("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW", "post")
PATHS = ("/ready", "/", "/tts/", "/TTS", "/tts?text=hi", "//tts", "/tts%00", "/%2e%2e/tts", "/tts;x", "*")
LENGTH_MODES = ("exact", "exact", "exact", "omit", "short", "long", "huge", "chunked")
TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


@dataclass(frozen=True)
class RawRequest:
    """One request as it goes on the wire; `close_early`: the client stops sending before the
    Content-Length it declared is reached (a truncated body)."""

    data: bytes
    body_kind: str
    close_early: bool = False

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"RawRequest({self.body_kind}, {self.data[:600]!r}{'...' if len(self.data) > 600 else ''})"


def json_values() -> st.SearchStrategy:
    """Any JSON value: huge integers, floats (also inf/nan, which json.dumps writes as non-JSON), odd text."""
    scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**200), 2**200)
               | st.floats() | st.text(max_size=16))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def texts(limits: HttpLimits) -> st.SearchStrategy:
    """`text` values: short speakable text, short odd Unicode, blanks, just over the limit, other types."""
    speakable = st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join)
    over = st.integers(limits.max_text_chars + 1, limits.max_text_chars + 64).map(lambda n: "a" * n)
    return st.one_of(speakable, st.text(max_size=12), st.sampled_from(["", " ", "\n\t", "\x00", "\u200b"]),
                     over, json_values())


def seeds() -> st.SearchStrategy:
    return st.one_of(st.integers(0, 2**32 - 1), st.integers(-(2**70), 2**70), st.sampled_from([2**32, -1]),
                     json_values())


def json_bodies(limits: HttpLimits) -> st.SearchStrategy:
    """JSON documents, mostly objects with some of text/seed (and sometimes extra keys)."""
    objects = st.fixed_dictionaries({}, optional={"text": texts(limits), "seed": seeds(),
                                                  "extra": json_values()})
    required = st.fixed_dictionaries({"text": texts(limits), "seed": seeds()})
    return st.one_of(required, required, objects, json_values())


def bodies(limits: HttpLimits) -> st.SearchStrategy:
    """(kind, bytes): JSON in UTF-8 (and otherwise), broken JSON, raw bytes."""
    as_json = st.tuples(json_bodies(limits), st.booleans()).map(
        lambda pair: ("json", json.dumps(pair[0], ensure_ascii=pair[1]).encode("utf-8", "surrogatepass")))
    return st.one_of(
        as_json, as_json, as_json,
        st.tuples(json_bodies(limits), st.sampled_from(["utf-16", "utf-32", "latin-1"])).map(
            lambda pair: ("encoding", json.dumps(pair[0]).encode(pair[1], "replace"))),
        st.tuples(as_json, st.integers(0, 64)).map(lambda pair: ("truncated-json", pair[0][1][:pair[1]])),
        st.integers(1, 5000).map(lambda n: ("nested", b"[" * n + b"]" * n)),
        st.sampled_from([b'{"text": "\\ud800 hi", "seed": 1}', b'{"text": "hi", "seed": 1e999}',
                         b'{"text": "hi", "seed": ' + b"9" * 5000 + b"}", b'{"text": "hi", "seed": NaN}',
                         b'{"text": "hi", "text": 5, "seed": 1}', b'\xef\xbb\xbf{"text": "hi", "seed": 1}']).map(
            lambda raw: ("literal", raw)),
        st.binary(max_size=256).map(lambda raw: ("bytes", raw)),
    )


def headers() -> st.SearchStrategy:
    """Extra headers: token names, values with odd (but legal on the wire) bytes."""
    names = st.text(alphabet=TOKEN, min_size=1, max_size=16)
    values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                     max_size=64).map(str.strip)
    return st.lists(st.tuples(names, values), max_size=4)


def usually(common: str, other: st.SearchStrategy, percent: int = 80) -> st.SearchStrategy:
    """`common` in about `percent` % of draws, else a draw from `other` (one_of would split evenly)."""
    return st.tuples(st.integers(0, 99), other).map(lambda pair: common if pair[0] < percent else pair[1])


@lru_cache(maxsize=8)
def requests(limits: HttpLimits | None = None) -> st.SearchStrategy:
    """Raw requests: mostly POST /tts with some JSON-ish body, everything else some of the time. The
    strategies are built once per limits (building them per example costs more than sending)."""
    limits = limits or HttpLimits()
    # most requests are POST /tts with a JSON Content-Type, so most of them reach the body checks
    methods = usually("POST", st.sampled_from(METHODS))
    paths = usually("/tts", st.one_of(st.sampled_from(PATHS), st.text(alphabet=string.ascii_letters + "/%.-_~",
                                                                      max_size=12).map(lambda p: "/" + p)))
    content_types = usually("application/json", st.one_of(st.sampled_from(CONTENT_TYPES), st.text(
        alphabet=string.printable[:94] + " ", max_size=40).map(str.strip)))
    parts = {"method": methods, "path": paths, "body": bodies(limits), "content_type": content_types,
             "mode": st.sampled_from(LENGTH_MODES), "headers": headers(), "keep_type": st.booleans(),
             "cut": st.integers(0, 1 << 16), "extra": st.integers(1, 4096),
             "huge": st.sampled_from([limits.max_body_bytes + 1, 10**12, 10**30])}
    return st.fixed_dictionaries(parts).map(_assemble)


def _assemble(parts: dict) -> RawRequest:
    """The wire bytes of one drawn request."""
    (kind, body), mode, content_type = parts["body"], parts["mode"], parts["content_type"]
    lines = [f"{parts['method']} {parts['path']} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if content_type or parts["keep_type"]:
        lines.append(f"Content-Type: {content_type}")
    close_early = mode in ("long", "huge")
    if mode == "exact":
        lines.append(f"Content-Length: {len(body)}")
    elif mode == "short":  # the rest is a junk second request on a connection the client asked to close
        lines.append(f"Content-Length: {parts['cut'] % max(len(body), 1)}")
    elif mode == "long":  # truncated: fewer bytes than declared, then the client stops sending
        lines.append(f"Content-Length: {len(body) + parts['extra']}")
    elif mode == "huge":  # far over max_body_bytes, only a few bytes sent: refused from the header
        lines.append(f"Content-Length: {parts['huge']}")
    elif mode == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    lines += [f"{name}: {value}" for name, value in parts["headers"]]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return RawRequest(head + body, f"{parts['method']} {kind} {mode}", close_early)
