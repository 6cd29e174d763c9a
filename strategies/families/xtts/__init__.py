"""The XTTS family: Coqui XTTS (GPT-2 + HiFi-GAN decoder) through Coqui's own Xtts class.

Its room: `model.py` (construction, tokenizer and synthesis), `loaders.py`, `build.py` (fixtures with
seeded weights, a BPE vocab and speaker latents); recognising a user's folder is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import BuildRequest, Family, Fixture, FolderError, folders

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader


def _detect(folder: Path) -> bool:
    """A Coqui config.json whose "model" is "xtts", next to a checkpoint.

    vocab.json and speakers_xtts.pth are not part of recognising it: a folder missing one is still an
    XTTS folder, and gets an error naming the missing file (`_roles`).
    """
    if not folders.has_checkpoint(folder):
        return False
    data = folders.config_json(folder)
    return data is not None and data.get("model") == "xtts"


def _roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    from ttsload.strategies.families.xtts import model

    if missing := model.missing_side_file(folder):
        raise FolderError(missing)
    return folders.config_and_checkpoint(folder, chosen) | {
        role: folder / name for role, (name, _) in model.SIDE_FILES.items()}


def _loaders() -> list[type[Loader]]:
    from ttsload.strategies.artifact_loaders import XttsArtifactLoader
    from ttsload.strategies.families.xtts.loaders import LOADERS

    return [*LOADERS, XttsArtifactLoader]


def _build(request: BuildRequest, out: Path) -> dict[str, Any]:
    from ttsload.strategies.families.xtts import build

    fixture = request.fixture
    return build.build(fixture.architecture, fixture.model_args, fixture.seed, out, list(request.texts))


FAMILY = Family(
    name="xtts",
    summary="Coqui XTTS (GPT-2 + HiFi-GAN decoder) through Coqui's own Xtts class",
    looks_for="config.json with \"model\": \"xtts\", a checkpoint (model.pth), vocab.json (its BPE tokenizer) "
              "and speakers_xtts.pth (speaker latents)",
    detect=_detect, roles=_roles, loaders=_loaders, build=_build, specificity=20,
    fixtures=(
        Fixture("xtts", "xtts-v2", "XTTS-v2's architecture (GPT 30 x 1024 + HiFi-GAN decoder, ~467 M params, "
                "~1.8 GB model.pth); requests capped at 64 audio codes (~2.97 s)", {"max_new_tokens": 64},
                family="xtts"),
        Fixture("xtts-small", "xtts-small", "XTTS with a 2-layer 256-channel GPT (~33 M params), for tests; "
                "requests capped at 8 audio codes, streamed natively 4 at a time",
                {"max_new_tokens": 8, "stream_chunk_tokens": 4}, family="xtts"),
    ),
)
