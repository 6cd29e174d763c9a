"""The text corpus is seeded, varied in length, and starts with its shortest text."""

from ttsload.bench.scenario.corpus import MAX_CHARS, MIN_CHARS, SHORTEST_TAIL, texts


def test_seeded_varied_and_shortest_first():
    first, again, other = texts(10, seed=3), texts(10, seed=3), texts(10, seed=4)
    assert first == again and first != other
    lengths = [len(t) for t in first]
    assert all(MIN_CHARS <= n <= MAX_CHARS for n in lengths)
    assert lengths[0] == min(lengths) and max(lengths) - min(lengths) > 300
    assert len(set(lengths)) == len(lengths)


def test_long_texts_are_several_sentences_with_no_stub():
    """Streaming splits at sentences: a long text must have several, and the cut must not leave a stub."""
    for text in texts(30, seed=1):
        sentences = text.split(". ")
        assert len(text) < 150 or len(sentences) >= 2, text
        assert len(sentences) == 1 or min(len(s) for s in sentences) >= SHORTEST_TAIL, text
        assert text.endswith(".") and text[0].isupper()
