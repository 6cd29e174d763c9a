"""Streaming in the loaded-model contract: chunks, their kind, and cancel, on the tiny real VITS and each family.

Forking topologies run in a fresh process, as in a real cell: a process that already ran torch (this one)
cannot fork safely.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ttsload.strategies.audio import concatenate
from ttsload.strategies.base import serve_stream
from ttsload.strategies.registry import resolve
from ttsload.strategies.reliability import FallbackModel

pytestmark = pytest.mark.integration  # every test here builds a model or starts a worker process

SENTENCES = ["The first sentence is here.", "A second one follows it.", "And a third one closes."]
TEXT = " ".join(SENTENCES)


def null_hook(*args, **fields) -> None:
    pass


def test_a_coqui_model_streams_by_sentence_and_each_chunk_is_that_sentence_s_audio(tiny):
    with resolve("singleton").build(tiny, null_hook, 1) as topology:
        stream = topology.synthesize_stream(TEXT, 7)
        chunks = list(stream)
        alone = [topology.synthesize(sentence, 7) for sentence in SENTENCES]
        one_sentence = topology.synthesize_stream(SENTENCES[0], 3)
        single = list(one_sentence)
        whole = topology.synthesize(SENTENCES[0], 3)
    assert (stream.kind, topology.stream_kind, len(chunks)) == ("sentence", "sentence", 3)
    for chunk, expected in zip(chunks, alone, strict=True):
        assert np.array_equal(chunk.wav, expected.wav)  # deterministic family: bit-identical
    assert len(single) == 1 and np.array_equal(concatenate(single).wav, whole.wav)


def test_a_model_that_cannot_stream_is_one_chunk_of_kind_none(tiny):
    from ttsload.strategies.registry import make_loader

    model = make_loader("eager", "coqui").load(tiny, null_hook)
    plain = FallbackModel(model, None, tiny, null_hook)  # a wrapper without synthesize_stream
    stream = serve_stream(plain, TEXT, 5)
    chunks = list(stream)
    assert stream.kind == "none" and len(chunks) == 1
    assert np.array_equal(chunks[0].wav, model.synthesize(TEXT, 5).wav)


SCRIPT = """
import json, sys
import numpy as np
from ttsload.strategies.audio import concatenate
from ttsload.strategies.base import ModelFiles
from ttsload.strategies.registry import resolve

def main():
    files = ModelFiles.from_json(json.loads(sys.argv[1])); text = sys.argv[2]; out = {}
    for name in sys.argv[3:]:
        with resolve(name).build(files, lambda *a, **k: None, 1, workers=2) as topology:
            full = list(topology.synthesize_stream(text, 7))
            cancelled = topology.synthesize_stream(text, 7)
            next(cancelled)
            cancelled.close()  # the worker stops at the next sentence and is free again
            after = [topology.synthesize_stream(text, 7) for _ in range(2)]  # two at once on 2 workers
            again = [list(stream) for stream in after]
            whole = topology.synthesize(text, 7)
            out[name] = {"kind": topology.stream_kind, "chunks": len(full),
                         "same_after_cancel": all(np.array_equal(concatenate(a).wav, concatenate(full).wav)
                                                  for a in again),
                         "whole_samples": len(whole.wav)}
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


def test_worker_and_forking_topologies_pass_chunks_over_their_pipe_and_cancel(tiny, tmp_path):
    names = ["subprocess-worker", "prefork+mmap", "zygote+eager"]
    script = tmp_path / "stream_topologies.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), json.dumps(tiny.to_json()), TEXT, *names],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for name in names:
        assert seen[name]["kind"] == "sentence", name
        assert seen[name]["chunks"] == 3, name
        assert seen[name]["same_after_cancel"], name


def test_the_cell_times_each_request_s_stream_with_the_shared_metric(tiny):
    """The single scenario's request loop (bench/cell/entry.serve) drains the stream through timed_stream: a
    multi-sentence text reaches its first audio before its end; a one-chunk path is marked not streaming."""
    from time import monotonic

    from ttsload.bench.cell.reporting import timed_stream
    from ttsload.strategies.registry import make_loader

    with resolve("singleton").build(tiny, null_hook, 1) as topology:
        audio, streamed = timed_stream(topology.synthesize_stream(TEXT, 7), monotonic())
        chunks = list(topology.synthesize_stream(TEXT, 7))
    assert (streamed["stream_kind"], streamed["chunks"]) == ("sentence", 3)
    assert streamed["ttfa_s"] < streamed["latency_s"] and streamed["streaming"] is True
    assert np.array_equal(audio.wav, concatenate(chunks).wav)

    plain = FallbackModel(make_loader("eager", "coqui").load(tiny, null_hook), None, tiny, null_hook)
    whole, one = timed_stream(serve_stream(plain, TEXT, 5), monotonic())
    assert (one["stream_kind"], one["chunks"], one["streaming"]) == ("none", 1, False)
    assert np.array_equal(whole.wav, plain.synthesize(TEXT, 5).wav)


@pytest.mark.parametrize("name", ["tacotron2-hifigan-tiny"])
def test_a_family_whose_front_end_splits_sentences_streams_each_sentence_s_own_audio(ttsload_home, name):
    """Families beside VITS (#24): the stream is the family's sentences, each synthesized alone, bit-identical."""
    from ttsload.bench.models import build
    from ttsload.strategies.registry import make_loader

    files = build(name)
    model = make_loader("eager", files.family).load(files, null_hook)
    stream = serve_stream(model, TEXT, 7)
    chunks = list(stream)
    assert (stream.kind, len(chunks)) == ("sentence", 3)
    for chunk, sentence in zip(chunks, SENTENCES, strict=True):
        assert np.array_equal(chunk.wav, model.synthesize(sentence, 7).wav)


def test_kokoro_streams_kpipeline_s_segments_each_synthesized_alone(ttsload_home):
    """Kokoro (#24): a line break starts a segment, and a segment over the model's limit is cut at its last
    sentence end (KPipeline's waterfall); each chunk is that segment's own audio, bit-identical."""
    from ttsload.bench.models import build
    from ttsload.strategies.families.kokoro.model import MAX_PHONEMES, segments
    from ttsload.strategies.registry import make_loader

    text = f"{TEXT} {SENTENCES[0]}\nA new line."  # its first line is over MAX_PHONEMES (80): cut once
    files = build("kokoro-tiny")
    model = make_loader("eager", files.family).load(files, null_hook)
    expected = segments(text, model.vocab)
    assert len(expected) == 3 and all(len(s) <= MAX_PHONEMES for s in expected)
    assert expected[0].endswith(".") and expected[1:] == segments(f"{SENTENCES[0]}\nA new line.", model.vocab)
    stream = serve_stream(model, text, 7)
    chunks = list(stream)
    assert (stream.kind, len(chunks)) == ("sentence", 3)
    for chunk, segment in zip(chunks, expected, strict=True):
        assert np.array_equal(chunk.wav, model.synthesize(segment, 7).wav)
    # The whole clip is every segment joined, so a text past the model's limit is spoken to its end.
    assert np.array_equal(model.synthesize(text, 7).wav, np.concatenate([chunk.wav for chunk in chunks]))


def test_xtts_streams_natively_by_codes_and_by_its_own_pieces_when_asked(ttsload_home, monkeypatch):
    """XTTS (#24): Coqui's inference_stream, a chunk every `stream_chunk_tokens` codes (xtts-small: 4 of its
    8 per piece), as long as the whole clip; `stream=sentence` gives XTTS's pieces, which join to the whole
    clip bit for bit; `stream=none` gives the whole clip."""
    from ttsload.bench.models import build
    from ttsload.strategies.registry import make_loader

    files = build("xtts-small")
    model = make_loader("eager", files.family).load(files, null_hook)
    text = " ".join(SENTENCES * 5)  # 395 characters, over XTTS's 250 per piece: two pieces
    assert len(model.pieces(text)) == 2
    whole = model.synthesize(text, 7)
    native = serve_stream(model, text, 7)
    chunks = list(native)
    assert (native.kind, len(chunks)) == ("native", 2 * 3)  # per piece: 2 decodes, then the cross-fade's tail
    assert sum(len(chunk.wav) for chunk in chunks) == len(whole.wav)
    monkeypatch.setenv("TTSLOAD_STREAM", "sentence")
    by_piece = serve_stream(model, text, 7)
    pieces = list(by_piece)
    assert (by_piece.kind, len(pieces)) == ("sentence", 2)
    assert np.array_equal(concatenate(pieces).wav, whole.wav)
    monkeypatch.setenv("TTSLOAD_STREAM", "none")
    assert [len(chunk.wav) for chunk in serve_stream(model, text, 7)] == [len(whole.wav)]


def test_a_stream_kind_the_model_cannot_give_is_one_line(tiny, monkeypatch):
    from ttsload.strategies.base import StrategyError
    from ttsload.strategies.registry import make_loader

    model = make_loader("eager", "coqui").load(tiny, null_hook)
    monkeypatch.setenv("TTSLOAD_STREAM", "native")
    with pytest.raises(StrategyError, match="stream=native: .* streams 'sentence'"):
        serve_stream(model, TEXT, 1)
