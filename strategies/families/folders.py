"""What every family's recognition of a user's folder shares: its config.json, its one checkpoint, its one
file of a kind, and the one-line error when a folder does not hold what its family needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt")


class FolderError(ValueError):
    """A folder of a recognised family misses a file or holds several where one is needed (one line)."""


def config_json(folder: Path) -> dict[str, Any] | None:
    """The folder's config.json as a dict, or None (absent, unreadable, not a JSON object)."""
    if not (folder / "config.json").is_file():  # a FIFO or device named config.json is never opened
        return None
    try:
        data = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def has_checkpoint(folder: Path, suffixes: tuple[str, ...] = CHECKPOINT_SUFFIXES) -> bool:
    return any(p.suffix in suffixes for p in folder.iterdir())


def only(folder: Path, pattern: str, what: str) -> Path:
    """The one file matching `pattern` (an ORT-optimised copy never counts), or FolderError."""
    found = sorted(p for p in folder.glob(pattern) if p.is_file() and ".optimized." not in p.name)
    if len(found) != 1:
        raise FolderError(f"expected one {what} ({pattern}) in {folder}, found {len(found)}: "
                          f"{', '.join(p.name for p in found) or 'none'}")
    return found[0]


def find_checkpoint(folder: Path, suffixes: tuple[str, ...] = CHECKPOINT_SUFFIXES,
                    preferred: tuple[str, ...] = ("model_file.pth", "model.pth", "best_model.pth")) -> Path:
    """The folder's checkpoint: a preferred name where present, else the only one, else FolderError."""
    # not only regular files: a FIFO or device named like a checkpoint is refused by name (trust.role_path)
    candidates = sorted(p for p in folder.iterdir() if p.suffix in suffixes and not p.is_dir())
    for name in preferred:
        if folder / name in candidates:
            return folder / name
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FolderError(f"no checkpoint ({', '.join(suffixes)}) in {folder}")
    raise FolderError(f"several checkpoints in {folder} ({', '.join(p.name for p in candidates)}): "
                      "pass the file itself")


def config_and_checkpoint(folder: Path, chosen: Path | None,
                          suffixes: tuple[str, ...] = CHECKPOINT_SUFFIXES) -> dict[str, Path]:
    """The roles of a config.json + checkpoint folder; `chosen`: the checkpoint the user named, if any."""
    return {"config": folder / "config.json", "checkpoint": chosen or find_checkpoint(folder, suffixes)}
