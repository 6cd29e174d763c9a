"""The tone family: a toy "TTS model" that plays a stored waveform once per character of the text.

A folder of it holds tone.json (its config) and tone.npy (its weights: one period of a waveform).
Everything ttsload needs to know about the family is in FAMILY below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ttsload.strategies.families import BuildRequest, Family, Fixture, folders


def detect(folder: Path) -> bool:
    """A user's folder is a tone model when it holds tone.json next to tone.npy."""
    return (folder / "tone.json").is_file() and (folder / "tone.npy").is_file()


def roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    """Which file plays which role: every family has a config and a checkpoint (sha256-checked on load)."""
    if chosen is not None and chosen.suffix != ".npy":
        raise folders.FolderError(f"{chosen}: a tone model's weights are a .npy file")
    return {"config": folder / "tone.json", "checkpoint": chosen or folder / "tone.npy"}


def loaders() -> list[type]:
    from ttsload_tone.loader import ToneLoader  # imported only when a loader is needed

    return [ToneLoader]


def build(request: BuildRequest, out: Path) -> dict[str, Any]:
    """Write a fixture: seeded random weights, in the family's own format; return the manifest's facts."""
    import numpy as np

    period = int(request.fixture.model_args["period"])
    wave = np.random.default_rng(request.fixture.seed).uniform(-0.5, 0.5, period).astype(np.float32)
    (out / "tone.json").write_text(json.dumps({"sample_rate": 16000, "repeats_per_char": 40}))
    np.save(out / "tone.npy", wave, allow_pickle=False)
    return {"params": period, "roles": {"config": "tone.json", "checkpoint": "tone.npy"}}


FAMILY = Family(
    name="tone",
    summary="toy: one stored waveform period, repeated per character",
    looks_for="tone.json and tone.npy",
    detect=detect,
    roles=roles,
    loaders=loaders,
    build=build,
    aliases={"eager": "tone-npy", "mmap": "tone-npy"},  # the presets' loaders, played by this family's own
    fixtures=(Fixture("tone-tiny", "tone", "toy tone model, 64-sample period", {"period": 64}),),  # family: tone
)
