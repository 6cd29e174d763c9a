"""Microbenchmarks (pytest-benchmark): each loader's load of the tiny VITS, and one synthesis.

These run in one warm process, repeated: they catch a slower code path in a loader or in synthesis
between commits (`nox -s microbench` saves and compares them). Cold start, memory and the fresh
process per measurement are the harness's job (`ttsload run`, `ttsload gate`), not these.
Excluded from `nox -s tests` (see [tool.pytest.ini_options]).
"""

from __future__ import annotations

import pytest

from ttsload.bench.scenario import corpus
from ttsload.strategies.base import null_hook
from ttsload.strategies.families.coqui.loaders import LOADERS
from ttsload.strategies.registry import resolve


@pytest.mark.parametrize("loader", sorted(cls.name for cls in LOADERS))
def test_load(benchmark, tiny, loader):
    from ttsload.strategies.registry import make_loader

    make_loader(loader).load(tiny, null_hook)  # first use in this process pays one-time imports
    loaded = benchmark.pedantic(lambda: make_loader(loader).load(tiny, null_hook), rounds=5, warmup_rounds=1)
    assert loaded.info["params"] > 0


def test_synthesis(benchmark, tiny):
    text = corpus.texts(1)[0]
    with resolve("singleton").build(tiny, null_hook) as server:
        audio = benchmark.pedantic(lambda: server.synthesize(text, seed=0), rounds=5, warmup_rounds=1)
    assert audio.seconds > 0
