"""A fixed, seeded corpus of texts of varied length (20-400 characters).

Varied shapes are what trigger allocator growth and per-shape caches; one fixed sentence hides them.
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
    """`count` sentences whose lengths are spread evenly over [min_chars, max_chars], shuffled by seed.

    The shortest comes first: cold start ends at the first audio, and a long first sentence would
    make it measure that sentence's synthesis instead of how fast the server becomes useful.
    """
    rng = random.Random(seed)
    if count <= 0:
        return []
    span = max_chars - min_chars
    rest = [min_chars + (span * i) // max(1, count - 1) for i in range(1, count)]
    rng.shuffle(rest)
    return [_sentence(rng, target) for target in [min_chars, *rest]]


def _sentence(rng: random.Random, target: int) -> str:
    words: list[str] = []
    while len(" ".join(words)) < target - 1:
        words.append(rng.choice(_WORDS))
        if len(words) % 9 == 0:
            words[-1] += ","
    text = " ".join(words).rstrip(",")[: target - 1].rstrip(" ,")
    return text[0].upper() + text[1:] + "."
