"""A fixed, seeded corpus of texts of varied length (20-400 characters), in sentences as people write them.

Varied shapes are what trigger allocator growth and per-shape caches; one fixed sentence hides them. A long
text is several sentences of 8-16 words (about 50-100 characters), as in what users send a speech server:
the families' front ends split there, so streaming can deliver the first sentence before the last is done.
"""

from __future__ import annotations

import random

MIN_CHARS, MAX_CHARS = 20, 400

_WORDS = (
    "the quick voice model loads weights from disk before it can speak to anyone who asks "
    "a server answers many requests every minute while memory stays flat and latency stays low "
    "when workers start they read the checkpoint map pages share them and synthesize audio "
    "please call back tomorrow morning about your order number and the delivery window "
    "weather today is mild with light rain in the evening and a gentle breeze from the west "
    "our meeting moved to the large room on the third floor next to the kitchen"
).split()


def texts(count: int, seed: int = 0, min_chars: int = MIN_CHARS, max_chars: int = MAX_CHARS) -> list[str]:
    """`count` texts whose lengths are spread evenly over [min_chars, max_chars], shuffled by seed.

    The shortest comes first: cold start ends at the first audio, and a long first text would
    make it measure that text's synthesis instead of how fast the server becomes useful.
    """
    rng = random.Random(seed)
    if count <= 0:
        return []
    span = max_chars - min_chars
    rest = [min_chars + (span * i) // max(1, count - 1) for i in range(1, count)]
    rng.shuffle(rest)
    return [_passage(rng, target) for target in [min_chars, *rest]]


SENTENCE_WORDS = (8, 16)  # words in one sentence, drawn uniformly
SHORTEST_TAIL = 12  # characters of the last sentence, at least, where the cut falls


def _passage(rng: random.Random, target: int) -> str:
    """Sentences of SENTENCE_WORDS words (a comma every 9th word) until `target` characters, cut to exactly that."""
    words: list[str] = []
    left = rng.randint(*SENTENCE_WORDS)
    while len(" ".join(words)) < target - 1:
        word = rng.choice(_WORDS)
        words.append(word.capitalize() if not words or words[-1].endswith(".") else word)
        left -= 1
        if left == 0:
            words[-1] += "."
            left = rng.randint(*SENTENCE_WORDS)
        elif len(words) % 9 == 0:
            words[-1] += ","
    text = " ".join(words)[: target - 1].rstrip(" ,.")
    while len(text) < target - 1:  # the cut fell on a space or a mark: fill with letters, so lengths stay exact
        text += rng.choice(_WORDS)[: target - 1 - len(text)]
    end = text.rfind(". ")
    if 0 <= end and len(text) - end - 2 < SHORTEST_TAIL:  # the cut left a stub sentence: join it to the one before
        text = f"{text[:end]}, {text[end + 2].lower()}{text[end + 3:]}"
    return text + "."
