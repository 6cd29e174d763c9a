"""The Kokoro family: Kokoro-82M and other StyleTTS2-family models through kokoro's KModel.

Its room: `model.py` (construction and synthesis), `loaders.py`, `build.py` (fixtures with seeded
weights); recognising a user's folder is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import BuildRequest, Family, Fixture, folders

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader


def _detect(folder: Path) -> bool:
    """Its config names an iSTFTNet decoder and an ALBERT (plbert), next to a .pth checkpoint."""
    if not any(folder.glob("*.pth")):
        return False
    data = folders.config_json(folder)
    return data is not None and "istftnet" in data and "plbert" in data


def _roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    return folders.config_and_checkpoint(folder, chosen, (".pth",)) | {
        "voice": folders.only(folder, "*.pt", "voice pack")}


def _loaders() -> list[type[Loader]]:
    from ttsload.strategies.families.kokoro.loaders import LOADERS

    return LOADERS


def _build(request: BuildRequest, out: Path) -> dict[str, Any]:
    from ttsload.strategies.families.kokoro import build

    fixture = request.fixture
    return build.build(fixture.architecture, fixture.model_args, fixture.seed, out)


FAMILY = Family(
    name="kokoro",
    summary="Kokoro-82M and other StyleTTS2-family models through kokoro's KModel",
    looks_for="config.json with 'istftnet' and 'plbert' sections, a .pth checkpoint and a voice pack (.pt)",
    detect=_detect, roles=_roles, loaders=_loaders, build=_build, specificity=30,
    aliases={"int8-bf16": "int8"},
    fixtures=(
        Fixture("kokoro", "kokoro-82m", "Kokoro-82M's architecture (~82 M params, ~312 MiB), 1 frame per phoneme",
                {"frames_per_phoneme": 1}, family="kokoro"),
        Fixture("kokoro-tiny", "kokoro-tiny", "Kokoro with a 1-layer ALBERT and 1 LSTM layer (~59 M params: the "
                "decoder's sizes are fixed in kokoro's code), for tests", {"frames_per_phoneme": 1}, family="kokoro"),
    ),
)
