"""The streaming contract's pieces that need no model: kinds, sentence chunking, concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from ttsload.strategies.audio import Audio, AudioStream, by_sentence, concatenate


def tone(n: int, rate: int = 16000) -> Audio:
    return Audio(np.full(n, 0.1, dtype=np.float32), rate)


def test_a_stream_kind_outside_the_three_is_refused():
    with pytest.raises(ValueError, match="native, sentence, none"):
        AudioStream([], "chunky")


def test_by_sentence_synthesizes_each_sentence_with_the_request_seed_and_skips_blank_ones():
    calls = []

    def synthesize(text: str, seed: int) -> Audio:
        calls.append((text, seed))
        return tone(len(text))

    chunks = list(by_sentence(synthesize, ["One.", "  ", " Two two. "], 9))
    assert calls == [("One.", 9), ("Two two.", 9)]
    assert [len(c.wav) for c in chunks] == [4, 8]


def test_closing_a_stream_stops_the_generator_that_makes_it():
    made = []

    def chunks():
        for n in range(5):
            made.append(n)
            yield tone(10)

    stream = AudioStream(chunks(), "sentence")
    next(stream)
    stream.close()
    assert list(stream) == [] and made == [0]


def test_concatenate_joins_chunks_and_refuses_mixed_rates_or_nothing():
    assert len(concatenate([tone(3), tone(4)]).wav) == 7
    with pytest.raises(ValueError, match="different sample rates"):
        concatenate([tone(3), tone(3, 22050)])
    with pytest.raises(ValueError, match="no audio"):
        concatenate([])
