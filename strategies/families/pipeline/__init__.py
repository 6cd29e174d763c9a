"""The coqui-pipeline family: a Coqui acoustic model and a Coqui vocoder served as one (Tacotron2 + HiFi-GAN).

Its room: `model.py` (construction and synthesis), `loaders.py`, `build.py` (fixtures with seeded
weights); recognising a user's folder is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import BuildRequest, Family, Fixture
from ttsload.strategies.families.pipeline import build as fixtures

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader

_NEEDED = ("config.json", "model.pth", "vocoder_config.json", "vocoder.pth")


def _detect(folder: Path) -> bool:
    """config.json and model.pth next to vocoder_config.json and vocoder.pth."""
    return all((folder / name).is_file() for name in _NEEDED)


def _roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    """Fixed names (model.py's ROLES); the optional copies where present."""
    from ttsload.strategies.families.pipeline import model

    named = {**model.ROLES, **model.OPTIONAL_ROLES}
    return {role: folder / name for role, name in named.items() if (folder / name).is_file()}


def _loaders() -> list[type[Loader]]:
    from ttsload.strategies.artifact_loaders import PipelineArtifactLoader
    from ttsload.strategies.families.pipeline.loaders import LOADERS

    return [*LOADERS, PipelineArtifactLoader]


def _build(request: BuildRequest, out: Path) -> dict[str, Any]:
    return fixtures.build(request.fixture.model_args, request.fixture.seed, out)


FAMILY = Family(
    name="coqui-pipeline",
    summary="a Coqui acoustic model and a Coqui vocoder served as one (Tacotron2 + HiFi-GAN)",
    looks_for="config.json + model.pth (acoustic model) and vocoder_config.json + vocoder.pth (vocoder)",
    detect=_detect, roles=_roles, loaders=_loaders, build=_build, specificity=10,
    fixtures=(
        Fixture("tacotron2-hifigan", "tacotron2-ddc+hifigan", "Coqui Tacotron2-DDC (r=2, 47 M params) + HiFi-GAN V1 "
                "(13.9 M; file with discriminators), 65 decoder steps (~1.6 s)", fixtures.FULL,
                family="coqui-pipeline"),
        Fixture("tacotron2-hifigan-tiny", "tacotron2-ddc+hifigan", "Tacotron2 without DDC (~28 M) + a small HiFi-GAN, "
                "8 decoder steps, for tests", fixtures.TINY, family="coqui-pipeline"),
    ),
)
