"""`ttsload models export NAME|PATH [--out DIR]`: write a model's inference artifact once (strategies/artifact.py).

The model is loaded with its family's exact `mmap` loader, then the family's `artifact` loader says what the
inference state is (`inference_state`: weight norm folded, training-only modules dropped); that state is
written as aligned safetensors next to copies of the config and side files, with a manifest. By default the
folder goes where a resolved model finds it (bench/models/artifacts.py), so `--strategy resident+artifact`
works on the same `--model` afterwards.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ttsload.bench import models
from ttsload.bench.errors import UsageError
from ttsload.bench.models import artifacts
from ttsload.strategies import artifact
from ttsload.strategies.base import ModelFiles, StrategyError, UnknownStrategy, null_hook

COPIED_ROLES = ("config", "vocoder_config", "vocab", "speakers")  # side files an artifact folder needs as they are
CARRIED_META = ("decoder_stop_threshold", "max_new_tokens")  # a fixture's serving settings the artifact keeps


def export(files: ModelFiles, out: Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Load `files` with its family's exact mmap loader, fold, drop, write the artifact folder; return it."""
    from ttsload.strategies.registry import loader_class, make_loader

    if artifacts.served_only_by_artifact(files):
        raise UsageError(f"'{files.name}' is already an inference artifact")
    try:
        target_class = loader_class("artifact", files.family)
    except UnknownStrategy:
        raise UsageError(f"no inference artifact for {files.family} models ('{files.name}'): see "
                         "'Inference artifact' in docs/strategies.md for why") from None
    out = out or artifacts.default_dir(files, models.home())
    replaceable(out, files)
    start = time.monotonic()
    loader = make_loader("mmap", files.family)
    loader.import_runtime(None)
    try:
        loaded = loader.load(files, null_hook)
    except StrategyError as exc:
        raise UsageError(f"cannot load '{files.name}' to export it: {exc}") from None
    source_params = loaded.info.get("params")
    state, facts = target_class.inference_state(loaded)  # type: ignore[attr-defined]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))  # never an existing folder
    padding = artifact.write_aligned(state, staging / artifact.ARTIFACT_FILE, {"format": "pt"})
    roles = {"checkpoint": artifact.ARTIFACT_FILE, artifact.ROLE: artifact.ARTIFACT_FILE}
    for role in COPIED_ROLES:
        path = files.config if role == "config" else files.extras.get(role)
        if path is not None:
            shutil.copy2(path, staging / path.name)
            roles[role] = path.name
    section = {"format": artifact.FORMAT, "source": files.name, "source_family": files.family,
               "source_sha256": dict(files.sha256), "source_checkpoint": str(files.checkpoint),
               "source_params": source_params, "elements": sum(v.numel() for v in state.values()),
               "tensors": len(state), "padding_bytes": padding, "align": artifact.ALIGN, **facts}
    carried = {key: files.meta[key] for key in CARRIED_META if key in files.meta}
    models.write_manifest(staging, files.name, {"family": files.family, "roles": roles, "artifact": section,
                                                  **carried, **models._versions()})
    _swap_in(staging, out, files)
    return out, {**section, "export_s": round(time.monotonic() - start, 2)}


def _previous_export(folder: Path, files: ModelFiles) -> bool:
    """`folder` holds an artifact ttsload exported from the same checkpoint (same sha256), and nothing else."""
    try:
        manifest = json.loads((folder / artifacts.MANIFEST).read_text())
        section = manifest["artifact"]
        same = section["source_sha256"].get(files.checkpoint.name) == files.sha256.get(files.checkpoint.name)
        listed = set(manifest["files"]) | {artifacts.MANIFEST}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return same and section.get("source_family") == files.family and {p.name for p in folder.iterdir()} <= listed


def replaceable(out: Path, files: ModelFiles) -> None:
    """Export writes only into a new or empty folder, or over its own earlier export of the same model."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise UsageError(f"--out {out} exists and is not a folder: refusing to replace it")
    if out.is_dir() and any(out.iterdir()) and not _previous_export(out, files):
        raise UsageError(f"--out {out} is a non-empty folder that is not an earlier export of '{files.name}': "
                         "refusing to delete it; choose a new or empty folder")


def _swap_in(staging: Path, out: Path, files: ModelFiles) -> None:
    """Put the finished export at `out`; an earlier export of the same model there is removed, nothing else."""
    replaceable(out, files)  # again: the folder may have changed during the export
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / "export")
        staging.rename(out)
        shutil.rmtree(old)
        return
    if out.is_dir():
        out.rmdir()
    staging.rename(out)
