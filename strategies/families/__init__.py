"""Model families: which files make a model of each, and which loaders stand for the presets.

A family is recognised from a folder's files (`detect`); a folder that matches none gets an error
naming every family and what each looks for. Loaders are registered per family (`Loader.family`);
where a family has no loader of a preset's name, `aliases` says which of its own loaders plays
that role (the ONNX family has no torch `mmap`: its memory-lean session stands in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    looks_for: str  # for error messages: the files that make a model of this family
    aliases: dict[str, str] = field(default_factory=dict)  # preset loader name -> this family's loader

    def detect(self, folder: Path) -> bool:
        return DETECTORS[self.name](folder)


def _config_json(folder: Path) -> dict | None:
    """The folder's config.json as a dict, or None (absent, unreadable, not a JSON object)."""
    import json

    if not (folder / "config.json").is_file():  # a FIFO or device named config.json is never opened
        return None
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_kokoro(folder: Path) -> bool:
    """Kokoro: its config names an iSTFTNet decoder and an ALBERT (plbert), next to a checkpoint."""
    if not any(folder.glob("*.pth")):
        return False
    data = _config_json(folder)
    return data is not None and "istftnet" in data and "plbert" in data


def _is_xtts(folder: Path) -> bool:
    """XTTS: a Coqui config.json whose "model" is "xtts", next to a checkpoint.

    vocab.json and speakers_xtts.pth are not part of recognising it: a folder missing one is still
    an XTTS folder, and gets an error naming the missing file (see strategies/families/xtts/model.py).
    """
    if not any(p.suffix in CHECKPOINT_SUFFIXES for p in folder.iterdir()):
        return False
    data = _config_json(folder)
    return data is not None and data.get("model") == "xtts"


def _is_onnx(folder: Path) -> bool:
    """Piper's voice format: model.onnx next to model.onnx.json."""
    return any(path.with_name(path.name + ".json").is_file() for path in folder.glob("*.onnx"))


def _is_coqui_pipeline(folder: Path) -> bool:
    """Coqui acoustic model + vocoder: config.json and model.pth next to vocoder_config.json and vocoder.pth."""
    return all((folder / name).is_file() for name in ("config.json", "model.pth", "vocoder_config.json", "vocoder.pth"))


def _is_coqui(folder: Path) -> bool:
    """Coqui: config.json next to a checkpoint, and not a Kokoro config or a pipeline."""
    return ((folder / "config.json").is_file() and any(p.suffix in CHECKPOINT_SUFFIXES for p in folder.iterdir())
            and not _is_kokoro(folder) and not _is_coqui_pipeline(folder))


DETECTORS = {"kokoro": _is_kokoro, "onnx": _is_onnx, "xtts": _is_xtts, "coqui-pipeline": _is_coqui_pipeline,
             "coqui": _is_coqui}
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("coqui", "Coqui TTS models through Coqui's own classes (VITS, ...)",
               "config.json (a Coqui config) and a checkpoint (.pth/.pt/.tar/.ckpt)"),
        Family("kokoro", "Kokoro-82M and other StyleTTS2-family models through kokoro's KModel",
               "config.json with 'istftnet' and 'plbert' sections, a .pth checkpoint and a voice pack (.pt)",
               aliases={"int8-bf16": "int8"}),
        Family("onnx", "ONNX Runtime sessions of voices in Piper's format",
               "model.onnx and model.onnx.json (Piper's voice config)",
               aliases={"eager": "ort", "mmap": "ort-lean", "int8-bf16": "ort-int8", "int8": "ort-int8"}),
        Family("coqui-pipeline", "a Coqui acoustic model and a Coqui vocoder served as one (Tacotron2 + HiFi-GAN)",
               "config.json + model.pth (acoustic model) and vocoder_config.json + vocoder.pth (vocoder)"),
        Family("xtts", "Coqui XTTS (GPT-2 + HiFi-GAN decoder) through Coqui's own Xtts class",
               "config.json with \"model\": \"xtts\", a checkpoint (model.pth), vocab.json (its BPE tokenizer) "
               "and speakers_xtts.pth (speaker latents)"),
    )
}


def detect(folder: Path) -> Family | None:
    """The family whose files the folder holds (first match in FAMILIES' order of specificity)."""
    for name in ("onnx", "kokoro", "xtts", "coqui-pipeline", "coqui"):
        if FAMILIES[name].detect(folder):
            return FAMILIES[name]
    return None


def no_family_message(folder: Path) -> str:
    tried = "; ".join(f"{f.name}: {f.looks_for}" for f in FAMILIES.values())
    return f"no model family recognises the files in {folder} (tried {tried})"
