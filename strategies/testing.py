"""Planted faults for testing the harness itself: loaders that misbehave on purpose.

Never visible in normal use: `registry.loaders()` adds them only when the environment has
TTSLOAD_TEST_STRATEGIES=1 (inherited by cell processes). With TTSLOAD_TEST_PLANT=NAME as well, the
named fault also stands in for `eager`, so every eager-based preset regresses under its usual name,
just as a slow change committed to the eager loader would.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

from ttsload.strategies.base import Audio, Hook, LoadedModel, Loader, ModelFiles, UnknownStrategy
from ttsload.strategies.families.coqui.loaders import EagerLoader

if TYPE_CHECKING:
    from TTS.tts.models.base_tts import BaseTTS


class SlowEagerLoader(EagerLoader):
    """eager, plus a fixed sleep in the weights phase (TTSLOAD_TEST_SLEEP_S, default 2 s)."""

    name = "slow-eager"
    summary = "TEST ONLY: eager + a fixed sleep while loading weights"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        time.sleep(float(os.environ.get("TTSLOAD_TEST_SLEEP_S", "2")))
        return super().fill(model, files)


class CopyEagerLoader(EagerLoader):
    """eager, plus one extra full copy of the weights kept alive with the model (memory grows by its size)."""

    name = "copy-eager"
    summary = "TEST ONLY: eager + one extra copy of the weights kept alive"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        import torch

        model = super().fill(model, files)
        # One contiguous buffer, not a clone per tensor: small clones can be served from heap that
        # malloc kept after reading the checkpoint (seen: +1.7 of 5.7 MiB on vits-tiny), while a
        # buffer this large is always freshly mapped, so the copy really adds the weights' size.
        tensors = [t.detach().reshape(-1).float() for t in model.state_dict().values() if t.is_floating_point()]
        copy = torch.cat(tensors)
        object.__setattr__(model, "_ttsload_planted_copy", copy)  # lives and dies with the model
        return model


class HangEagerLoader(EagerLoader):
    """Coqui's eager path that never finishes reading its weights: a hung load, for deadline tests."""

    name = "hang-eager"
    summary = "TEST ONLY: constructs the model, then blocks forever in the weights phase"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        threading.Event().wait()  # blocks in Python, so a stack dump shows exactly where
        return model


class LeakEagerLoader(EagerLoader):
    """eager, and every synthesis keeps TTSLOAD_TEST_LEAK_KB (default 64) KiB of written memory forever."""

    name = "leak-eager"
    summary = "TEST ONLY: eager + a fixed amount of memory kept per request (a real leak)"

    def load(self, files: ModelFiles, hook: Hook) -> LoadedModel:
        loaded = super().load(files, hook)
        size = int(float(os.environ.get("TTSLOAD_TEST_LEAK_KB", "64")) * 1024)
        kept: list[bytes] = []
        synthesize = loaded.synthesize

        def leaking(text: str, seed: int) -> Audio:
            kept.append(b"\x01" * size)  # written bytes: resident, not a lazily mapped zero page
            return synthesize(text, seed)

        loaded.synthesize = leaking
        return loaded


class CpuEagerLoader(EagerLoader):
    """eager, plus busy work in the weights phase worth TTSLOAD_TEST_CPU_PCT (default 20) % of its own CPU time.

    The spin is measured against the eager fill's CPU seconds in this very process, so the fault is a
    relative one (+20 % CPU of the weights phase) on any machine, as a slower copy loop would be.
    """

    name = "cpu-eager"
    summary = "TEST ONLY: eager + busy CPU work worth a fixed fraction of the weights phase's CPU time"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        start = time.process_time()
        model = super().fill(model, files)
        until = time.process_time() + (time.process_time() - start) * float(
            os.environ.get("TTSLOAD_TEST_CPU_PCT", "20")) / 100
        while time.process_time() < until:
            pass
        return model


class AnonEagerLoader(EagerLoader):
    """eager, plus written anonymous memory worth TTSLOAD_TEST_ANON_PCT (default 10) % of the process's
    anonymous PSS once loaded, kept alive with the model (it survives malloc_trim: it is in use)."""

    name = "anon-eager"
    summary = "TEST ONLY: eager + extra anonymous memory worth a fixed fraction of the loaded process's"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        model = super().fill(model, files)
        size = int(_pss_anon_bytes() * float(os.environ.get("TTSLOAD_TEST_ANON_PCT", "10")) / 100)
        object.__setattr__(model, "_ttsload_planted_anon", b"\x01" * size)  # written: resident
        return model


def _pss_anon_bytes() -> int:
    with open("/proc/self/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss_Anon:"):
                return int(line.split()[1]) * 1024
    return 0


class HogEagerLoader(EagerLoader):
    """eager, plus TTSLOAD_TEST_HOG_MB (default 600) MiB of written memory kept with the model: a loader far
    heavier than mmap, so a real memory limit between the two OOM-kills it and lets mmap through."""

    name = "hog-eager"
    summary = "TEST ONLY: eager + a fixed amount of written memory kept with the model (a heavy loader)"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        model = super().fill(model, files)
        size = int(float(os.environ.get("TTSLOAD_TEST_HOG_MB", "600")) * 2**20)
        object.__setattr__(model, "_ttsload_planted_hog", bytearray(b"\x01") * size)  # written: resident
        return model


PLANTED: dict[str, type[Loader]] = {
    cls.name: cls for cls in (SlowEagerLoader, CopyEagerLoader, HangEagerLoader, LeakEagerLoader, CpuEagerLoader,
                              AnonEagerLoader, HogEagerLoader)
}


def with_planted_faults(found: dict[str, dict[str, type[Loader]]]) -> dict[str, dict[str, type[Loader]]]:
    """The loaders plus the planted ones (Coqui family); TTSLOAD_TEST_PLANT=NAME makes NAME stand in for `eager`."""
    found = {**found, **{name: {cls.family: cls} for name, cls in PLANTED.items()}}
    plant = os.environ.get("TTSLOAD_TEST_PLANT")
    if plant:
        if plant not in PLANTED:
            raise UnknownStrategy(f"TTSLOAD_TEST_PLANT='{plant}' is not a planted fault ({', '.join(PLANTED)})")
        found["eager"] = {**found["eager"], PLANTED[plant].family: PLANTED[plant]}
    return found
