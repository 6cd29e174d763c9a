"""The Coqui family: Coqui TTS models (VITS, ...) through Coqui's own classes.

Its room: `model.py` (construction and synthesis), `loaders.py` (how the weights reach memory),
`build.py` (fixtures with seeded weights); recognising a user's folder is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import BuildRequest, Family, Fixture, folders
from ttsload.strategies.families.coqui import build as fixtures

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader


def _detect(folder: Path) -> bool:
    """config.json next to a checkpoint: the catch-all, tried after every more specific family."""
    return (folder / "config.json").is_file() and folders.has_checkpoint(folder)


def _roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    return folders.config_and_checkpoint(folder, chosen)


def _loaders() -> list[type[Loader]]:
    from ttsload.strategies.artifact_loaders import CoquiArtifactLoader
    from ttsload.strategies.families.coqui.loaders import LOADERS

    return [*LOADERS, CoquiArtifactLoader]


def _build(request: BuildRequest, out: Path) -> dict[str, Any]:
    fixture = request.fixture
    return fixtures.build(fixture.name, fixture.model_args, fixture.seed, out)


_KEY = {"chars": fixtures.CHARACTERS}  # the key Coqui fixtures always had, so built caches stay valid
FAMILY = Family(
    name="coqui",
    summary="Coqui TTS models through Coqui's own classes (VITS, ...)",
    looks_for="config.json (a Coqui config) and a checkpoint (.pth/.pt/.tar/.ckpt)",
    detect=_detect, roles=_roles, loaders=_loaders, build=_build, specificity=0,
    fixtures=(
        Fixture("vits-tiny", "vits", "tiny VITS for tests (~1.5 M params, ~6 MiB, builds in seconds)",
                fixtures.TINY_VITS, key_facts=_KEY),
        Fixture("vits-tiny-2", "vits", "vits-tiny with other seeded weights: a second 'language' for switch tests",
                fixtures.TINY_VITS, seed=1, key_facts=_KEY),
        Fixture("vits", "vits", "VITS without the discriminator (~36 M params, ~139 MiB): the default",
                {"init_discriminator": False}, key_facts=_KEY),
        Fixture("vits-train", "vits", "VITS training checkpoint with discriminator (~83 M params, ~317 MiB)",
                key_facts=_KEY),
    ),
)
