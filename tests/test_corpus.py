"""The text corpus is seeded, varied in length, and starts with its shortest text."""

from ttsload.bench.scenario.corpus import MAX_CHARS, MIN_CHARS, texts


def test_seeded_varied_and_shortest_first():
    first, again, other = texts(10, seed=3), texts(10, seed=3), texts(10, seed=4)
    assert first == again and first != other
    lengths = [len(t) for t in first]
    assert all(MIN_CHARS <= n <= MAX_CHARS for n in lengths)
    assert lengths[0] == min(lengths) and max(lengths) - min(lengths) > 300
    assert len(set(lengths)) == len(lengths)
