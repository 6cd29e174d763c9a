"""Real Coqui model fixtures: built from configs with seeded random weights, cached, manifested.

Loading cost does not depend on whether weights were trained, so a real architecture with random
weights saved in Coqui's own format is an honest stand-in for a downloaded model. Fixtures are
cached under $TTSLOAD_HOME (default ~/.cache/ttsload) by (architecture, config hash, seed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ttsload.bench.errors import UsageError
from ttsload.strategies.base import ModelFiles, sha256_of

MANIFEST = "manifest.json"
CHECKPOINT = "model_file.pth"
CONFIG = "config.json"
SAFETENSORS = "model.safetensors"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")

# LJSpeech-like character set: no phonemizer (espeak) needed.
_CHARACTERS = {
    "characters_class": "TTS.tts.models.vits.VitsCharacters",
    "pad": "<PAD>",
    "eos": "<EOS>",
    "bos": "<BOS>",
    "blank": "<BLNK>",
    "characters": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "punctuations": "!'(),-.:;? ",
    "phonemes": None,
    "is_unique": True,
    "is_sorted": True,
}


@dataclass(frozen=True)
class Fixture:
    """A buildable model: architecture, the model-args overrides, and the seed of its weights."""

    name: str
    architecture: str
    summary: str
    model_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def key(self) -> str:
        spec = json.dumps({"arch": self.architecture, "args": self.model_args, "chars": _CHARACTERS}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}-s{self.seed}"


_TINY = {
    "hidden_channels": 32,
    "hidden_channels_ffn_text_encoder": 64,
    "num_heads_text_encoder": 2,
    "num_layers_text_encoder": 2,
    "num_layers_posterior_encoder": 2,
    "num_layers_flow": 2,
    "upsample_initial_channel_decoder": 32,
    "resblock_kernel_sizes_decoder": [3],
    "resblock_dilation_sizes_decoder": [[1, 3, 5]],
    "init_discriminator": False,
}
FIXTURES: dict[str, Fixture] = {
    f.name: f
    for f in (
        Fixture("vits-tiny", "vits", "tiny VITS for tests (~1.5 M params, ~6 MiB, builds in seconds)", _TINY),
        Fixture("vits-tiny-2", "vits", "vits-tiny with other seeded weights: a second 'language' for switch tests",
                _TINY, seed=1),
        Fixture("vits", "vits", "VITS without the discriminator (~36 M params, ~139 MiB): the default", {
            "init_discriminator": False,
        }),
        Fixture("vits-train", "vits", "VITS training checkpoint with discriminator (~83 M params, ~317 MiB)"),
    )
}


def home() -> Path:
    return Path(os.environ.get("TTSLOAD_HOME", Path.home() / ".cache" / "ttsload"))


def fixture_dir(fixture: Fixture) -> Path:
    return home() / "models" / fixture.key()


def build(name: str, force: bool = False) -> ModelFiles:
    """Build a fixture (or reuse the cached one) and return its verified-on-load files."""
    fixture = FIXTURES.get(name)
    if fixture is None:
        raise UsageError(f"unknown model fixture '{name}': known are {', '.join(FIXTURES)}")
    target = fixture_dir(fixture)
    if (target / MANIFEST).is_file() and not force:
        return read_manifest(target)
    staging = target.with_name(target.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _build_vits(fixture, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic: a half-built fixture never looks finished
    return read_manifest(target)


def _build_vits(fixture: Fixture, out: Path) -> None:
    """Construct Coqui's real Vits from its config with seeded weights and save it Coqui's way."""
    import torch
    from safetensors.torch import save_file
    from trainer.io import save_model
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits, VitsArgs

    config = VitsConfig(
        model_args=VitsArgs(**fixture.model_args),
        characters=CharactersConfig(**_CHARACTERS),
        use_phonemes=False,
        text_cleaner="english_cleaners",
        add_blank=True,
        run_name=fixture.name,
    )
    torch.manual_seed(fixture.seed)
    model = Vits(config)
    config.save_json(str(out / CONFIG))
    # trainer's own save_model writes Coqui's checkpoint format; a fixed date keeps the bytes stable.
    save_model(config, model, str(out / CHECKPOINT), current_step=0, epoch=0, date="ttsload fixture")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / SAFETENSORS), metadata={"format": "pt"})
    params = sum(p.numel() for p in model.parameters())
    write_manifest(out, fixture.name, {"fixture": asdict(fixture), "params": params, **_versions()})


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"coqui_tts": version("coqui-tts"), "torch": version("torch")}


def write_manifest(folder: Path, name: str, meta: dict[str, Any], files: list[Path] | None = None) -> None:
    paths = files if files is not None else sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    entries = {p.name: {"sha256": sha256_of(p), "bytes": p.stat().st_size} for p in paths}
    manifest = {"name": name, "files": entries, **meta}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(folder: Path, checkpoint: Path | None = None) -> ModelFiles:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read model manifest {folder / MANIFEST}: {exc}") from exc
    files = manifest["files"]
    names = [n for n in files if Path(n).suffix in CHECKPOINT_SUFFIXES]
    ckpt = checkpoint or folder / (CHECKPOINT if CHECKPOINT in files else (names[0] if names else CHECKPOINT))
    return ModelFiles(
        name=manifest["name"],
        config=folder / CONFIG,
        checkpoint=ckpt,
        sha256={n: e["sha256"] for n, e in files.items()},
        safetensors=folder / SAFETENSORS if SAFETENSORS in files else None,
        meta={k: v for k, v in manifest.items() if k != "files"} | {"files": files},
    )


def resolve(spec: str) -> ModelFiles:
    """A fixture name (built on demand), a Coqui model folder, or a checkpoint file inside one."""
    if spec in FIXTURES:
        return build(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"model not found: '{spec}' is neither a fixture ({', '.join(FIXTURES)}) nor an existing path")
    folder, checkpoint = (path, None) if path.is_dir() else (path.parent, path)
    if not (folder / CONFIG).is_file():
        raise UsageError(f"no {CONFIG} in {folder}: a Coqui model folder needs its config next to the checkpoint")
    if checkpoint is None:
        checkpoint = _find_checkpoint(folder)
    if (folder / MANIFEST).is_file():
        files = read_manifest(folder, checkpoint)
    else:
        files = _trust_on_first_use(folder, checkpoint)
    return replace(files, name=spec)  # a model given by path is named by that path in the results


def _find_checkpoint(folder: Path) -> Path:
    candidates = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    for preferred in (CHECKPOINT, "model.pth", "best_model.pth"):
        if folder / preferred in candidates:
            return folder / preferred
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(f"no checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) in {folder}")
    raise UsageError(f"several checkpoints in {folder} ({', '.join(p.name for p in candidates)}): pass the file itself")


def _trust_on_first_use(folder: Path, checkpoint: Path) -> ModelFiles:
    """A folder ttsload did not build has no manifest: record its sha256 at first sight.

    Later runs verify against that record, so a file changed between runs is caught. The record
    lives in ttsload's cache, never in the user's model folder.
    """
    record = home() / "external" / hashlib.sha256(str(checkpoint.resolve()).encode()).hexdigest()[:16]
    if not (record / MANIFEST).is_file():
        record.mkdir(parents=True, exist_ok=True)
        write_manifest(record, checkpoint.parent.name, {"source": str(folder)}, [folder / CONFIG, checkpoint])
    files = read_manifest(record, checkpoint)
    return ModelFiles(files.name, folder / CONFIG, checkpoint, files.sha256, None, files.meta)


def listing() -> list[dict[str, Any]]:
    """One row per fixture: whether it is built, where, and its size."""
    rows = []
    for fixture in FIXTURES.values():
        folder = fixture_dir(fixture)
        built = (folder / MANIFEST).is_file()
        meta = json.loads((folder / MANIFEST).read_text()) if built else {}
        size = sum(e["bytes"] for e in meta.get("files", {}).values())
        rows.append({"name": fixture.name, "summary": fixture.summary, "built": built, "path": str(folder),
                     "params": meta.get("params"), "bytes": size or None})
    return rows
