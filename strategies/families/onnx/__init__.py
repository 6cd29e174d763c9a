"""The ONNX family: voices in Piper's format (VITS exported to ONNX) on ONNX Runtime sessions.

Its room: `model.py` (sessions and synthesis), `loaders.py`, `build.py` (a Coqui fixture's weights
exported as a Piper voice); recognising a user's folder is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttsload.strategies.families import BuildRequest, Family, Fixture, FolderError, folders
from ttsload.strategies.families.coqui import build as coqui_fixtures

if TYPE_CHECKING:
    from ttsload.strategies.base import Loader


def _detect(folder: Path) -> bool:
    """Piper's voice format: model.onnx next to model.onnx.json."""
    return any(path.with_name(path.name + ".json").is_file() for path in folder.glob("*.onnx"))


def _roles(folder: Path, chosen: Path | None) -> dict[str, Path]:
    model = chosen if chosen is not None and chosen.suffix == ".onnx" else folders.only(folder, "*.onnx", "ONNX model")
    roles = {"checkpoint": model, "config": model.with_name(model.name + ".json")}
    optimized = model.with_name(model.stem + ".optimized.onnx")
    return roles | ({"optimized": optimized} if optimized.is_file() and optimized != model else {})


def _loaders() -> list[type[Loader]]:
    from ttsload.strategies.families.onnx.loaders import LOADERS

    return LOADERS


def _build(request: BuildRequest, out: Path) -> dict[str, Any]:
    from ttsload.strategies.families.onnx import build

    fixture = request.fixture
    if request.source is None:
        raise FolderError(f"fixture '{fixture.name}' needs the Coqui fixture it exports")
    return build.build(fixture.name, fixture.model_args, fixture.seed, out, request.source)


FAMILY = Family(
    name="onnx",
    summary="ONNX Runtime sessions of voices in Piper's format",
    looks_for="model.onnx and model.onnx.json (Piper's voice config)",
    detect=_detect, roles=_roles, loaders=_loaders, build=_build, specificity=40, exports_from="coqui",
    aliases={"eager": "ort", "mmap": "ort-lean", "int8-bf16": "ort-int8", "int8": "ort-int8"},
    fixtures=(
        Fixture("vits-onnx", "vits", "vits exported to ONNX as a Piper voice (+ the graph ORT optimised at build)",
                {"init_discriminator": False}, family="onnx"),
        Fixture("vits-tiny-onnx", "vits", "vits-tiny exported to ONNX as a Piper voice, for tests",
                coqui_fixtures.TINY_VITS, family="onnx"),
    ),
)
