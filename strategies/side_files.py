"""The trust boundary of a model folder: every file a config names is part of the model.

Coqui opens files its config names while a model is constructed (`audio.stats_path` through
`np.load(allow_pickle=True)`, speaker, d-vector and language files, a speaker encoder), so those
files are checked like the checkpoint: each must lie inside the model folder, be a regular file,
carry a sha256 that ttsload recorded, and be read first by ttsload's own safe code (a restricted
unpickler for stats, `weights_only=True`, JSON). Coqui never opens a stats file: `AudioProcessor`
gets the values ttsload read (`guard_audio_processor`). URLs (fsspec) in path-like keys are refused.
Every failure is one line naming the file and the config key.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ttsload.strategies.integrity import ModelFiles, StrategyError

# Keys Coqui opens while constructing or serving a model (read in TTS/utils/audio/processor.py,
# TTS/tts/utils/speakers.py, languages.py, managers.py, TTS/tts/models/xtts.py), by how ttsload reads them.
OPENED = {
    "audio.stats_path": "stats",
    "speakers_file": "speakers", "speaker_file": "speakers", "d_vector_file": "speakers",
    "model_args.speakers_file": "speakers", "model_args.speaker_file": "speakers",
    "model_args.d_vector_file": "speakers",
    "model_args.speaker_encoder_model_path": "torch", "model_args.speaker_encoder_config_path": "json",
    "model_args.language_ids_file": "json", "model_args.tokenizer_file": "json",
    "mel_statistics_parameter_path": "torch", "model_args.mel_statistics_parameter_path": "torch",
}
# Trainer settings that nothing opens at construction or inference (released configs keep the trainer's values).
TRAINING_ONLY = {"output_path", "phoneme_cache_path", "test_sentences_file", "attn_prior_cache_path", "best_path",
                 "continue_path", "restore_path", "f0_cache_path", "energy_cache_path", "pretrained_model_path",
                 "data_path", "feature_path", "mel_norm_file"}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:|://|::")
_VERIFIED: dict[str, tuple[str, Any]] = {}  # real path -> (kind, value read safely) in this process


class SideFileError(StrategyError):
    """A file a config names is outside the folder, not a regular file, unrecorded, changed or unsafe."""


def _path_like(key: str) -> bool:
    return key.endswith(("_path", "_file", "_files"))


def kind_of(key: str) -> str:
    """How ttsload reads the file of a config key: as Coqui would open it, or as bytes if Coqui never does."""
    return OPENED.get(key) or OPENED.get(key.rsplit(".", 1)[-1], "bytes")


def _walk(data: object, prefix: str = "") -> Iterator[tuple[str, str]]:  # parsed JSON: any shape
    """(dotted key, string value) of every path-like key, list values included (`d_vector_file` may be a list)."""
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if isinstance(key, str) and _path_like(key):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str) and item.strip():
                        yield dotted, item
            if isinstance(value, dict | list):
                yield from _walk(value, f"{dotted}.")
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _walk(item, f"{prefix}{index}.")


def named_files(config: Path, data: object) -> list[tuple[str, Path]]:
    """(config key, path) of every file the config names that is part of the model; URLs refused."""
    found = []
    for key, value in _walk(data):
        if _URL.search(value):
            raise SideFileError(f"{config}: {key} is a URL ({value[:80]}): model files must be local, in the folder")
        if key.rsplit(".", 1)[-1] in TRAINING_ONLY or key.startswith("datasets."):
            continue
        found.append((key, inside(config.parent, value, f"{key} in {config}")))
    return found


def inside(folder: Path, name: str, where: str) -> Path:
    """`name` (relative to `folder`, or absolute) as a path lexically inside `folder`, whose target is a regular
    file inside it too (or in the blob store of the Hugging Face cache snapshot `folder` is)."""
    base = Path(os.path.abspath(folder))
    path = Path(os.path.normpath(base / name))
    if not path.is_relative_to(base) or path == base:
        raise SideFileError(f"{name} ({where}) is outside the model folder {folder}")
    target = Path(os.path.realpath(path))
    roots = [Path(os.path.realpath(base))]
    if base.parent.name == "snapshots":  # models--org--name/snapshots/<rev>/file -> ../../blobs/<sha>
        roots.append(Path(os.path.realpath(base.parent.parent / "blobs")))
    if not any(target.is_relative_to(root) for root in roots):
        raise SideFileError(f"{name} ({where}) links to {target}, outside the model folder {folder}")
    regular(path, where)
    return path


def regular(path: Path, where: str) -> None:
    """Refuse anything but a regular file (a FIFO or /dev/zero would hang a reader, a directory fails later)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SideFileError(f"{path} ({where}) cannot be read: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(mode):
        raise SideFileError(f"{path} ({where}) is not a regular file")


def configs(files: ModelFiles) -> list[Path]:
    """The config files of a model whose named files are part of it (a pipeline has two)."""
    extra = files.extras.get("vocoder_config")
    return [files.config, *([extra] if extra is not None else [])]


def record_key(folder: Path, path: Path) -> str:
    """The manifest key of a file: its path relative to the model folder."""
    return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(folder))).as_posix()


def discover(files: ModelFiles, unreadable_ok: bool = False) -> list[tuple[Path, str, Path]]:
    """(config, key, file) for every file the model's configs name; a bad path is one line, and so is a config
    that is not JSON unless `unreadable_ok` (resolving: the loader then fails on it, as a failed cell)."""
    found = []
    for config in configs(files):
        try:
            data = json.loads(config.read_bytes())
        except (OSError, ValueError) as exc:
            if unreadable_ok:
                continue
            raise SideFileError(f"cannot read config {config}: {type(exc).__name__}: {exc}") from None
        found += [(config, key, path) for key, path in named_files(config, data)]
    return found


def check(files: ModelFiles) -> list[Path]:
    """Verify and safely read every file the configs name, before the family's code could; return them."""
    checked = []
    for config, key, path in discover(files):
        name = record_key(files.config.parent, path)
        where = f"{key} in {config}"
        expected = files.sha256.get(name)
        if expected is None:
            raise SideFileError(f"{path} ({where}) has no sha256 in the manifest of model '{files.name}': "
                                "a file a config names is part of the model")
        data = read_once(path, where)
        if hashlib.sha256(data).hexdigest() != expected:
            raise SideFileError(f"sha256 mismatch for {path} ({where}): changed since it was recorded")
        kind = kind_of(key)
        _VERIFIED[os.path.realpath(path)] = (kind, read_safely(kind, data, path, where))
        checked.append(path)
    return checked


def read_once(path: Path, where: str) -> bytes:
    """The file's bytes, read from one descriptor that is checked to be a regular file before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise SideFileError(f"{path} ({where}) cannot be read: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise SideFileError(f"{path} ({where}) is not a regular file")
        return handle.read()


def read_safely(kind: str, data: bytes, path: Path, where: str) -> Any:
    """The file's content read without running code: JSON, torch's weights_only, or numpy arrays only."""
    try:
        if kind == "json" or (kind == "speakers" and path.suffix == ".json"):
            return json.loads(data)
        if kind in ("torch", "speakers"):
            import torch

            try:
                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as exc:  # torch's text advises unpickling it anyway: never shown
                from ttsload.strategies import load_errors

                raise SideFileError(f"{load_errors.describe(path, exc)} ({where})") from None
        if kind == "stats":
            return read_stats(data, path, where)
    except SideFileError:
        raise
    except Exception as exc:
        raise SideFileError(f"{path} ({where}) was refused: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]}") from None
    return None


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays, numpy scalars and plain containers; any other global is refused (like torch's
    weights_only), so a stats file cannot name code."""

    ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED and not (module == "numpy.dtypes" and name.endswith("DType")):
            raise pickle.UnpicklingError(f"its pickle references code ({module}.{name})")
        import collections

        import numpy as np

        if module == "collections":
            return collections.OrderedDict
        if module.endswith("multiarray"):
            return getattr(np._core.multiarray, name)
        return getattr(np.dtypes if module == "numpy.dtypes" else np, name)


STATS_KEYS = ("mel_mean", "mel_std", "linear_mean", "linear_std", "audio_config")


def read_stats(data: bytes, path: Path, where: str) -> dict[str, Any]:
    """A Coqui stats file (np.save of a dict of arrays), unpickled with `_ArraysOnly`; never np.load's pickle."""
    import numpy as np
    from numpy.lib import format as npy

    stream = io.BytesIO(data)
    version = npy.read_magic(stream)
    header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
    if header is None:
        raise SideFileError(f"{path} ({where}): .npy version {version} is not read by ttsload")
    shape, _, dtype = header(stream)
    if not dtype.hasobject:
        raise SideFileError(f"{path} ({where}) holds a plain {dtype} array, not Coqui's stats dictionary")
    try:
        array = _ArraysOnly(stream).load()
    except pickle.UnpicklingError as exc:
        raise SideFileError(f"{path} ({where}) was refused: {exc}; ttsload never unpickles code") from None
    stats = array.item() if isinstance(array, np.ndarray) and array.shape == () else None
    if not isinstance(stats, dict) or any(key not in stats for key in STATS_KEYS):
        raise SideFileError(f"{path} ({where}) is not a Coqui stats file (a dict with {', '.join(STATS_KEYS)})")
    return stats


def verified(path: str | os.PathLike[str], kind: str, where: str) -> Any:
    """What ttsload read from `path` in this process (check), or a one-line refusal."""
    found = _VERIFIED.get(os.path.realpath(path))
    if found is None or found[0] != kind:
        raise SideFileError(f"{path} ({where}) was not verified by ttsload: Coqui may not open it")
    return found[1]


def pin(config: Any, config_path: Path) -> None:
    """Point every opened key of a loaded Coqui config at the absolute path ttsload verified (Coqui resolves
    relative paths against the working directory, ttsload against the model folder)."""
    guard_audio_processor()
    for key, value in _walk(config.to_dict() if hasattr(config, "to_dict") else config):
        if kind_of(key) != "bytes":
            path = inside(config_path.parent, value, f"{key} in {config_path}")
            if os.path.realpath(path) not in _VERIFIED:
                raise SideFileError(f"{path} ({key} in {config_path}) was not verified by ttsload: Coqui may not "
                                    "open it")
            _set(config, key, value, str(path))


def _set(config: Any, dotted: str, old: str, new: str) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else (node[part] if isinstance(node, dict)
                                                                else getattr(node, part))
    value = node[last] if isinstance(node, dict) else getattr(node, last)
    if isinstance(value, list):
        value = [new if item == old else item for item in value]
    else:
        value = new
    if isinstance(node, dict):
        node[last] = value
    else:
        setattr(node, last, value)


def guard_audio_processor() -> None:
    """Coqui's AudioProcessor gets its stats from what ttsload read; it never np.loads a pickle itself."""
    from TTS.utils.audio.processor import AudioProcessor

    if getattr(AudioProcessor.load_stats, "ttsload_guard", False):
        return

    def load_stats(self: Any, stats_path: str) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        stats = verified(stats_path, "stats", "audio.stats_path")
        config = stats["audio_config"]
        for key, value in config.items():  # what Coqui's load_stats asserts, as one line
            if key in ("griffin_lim_iters", "stats_path", "do_trim_silence", "ref_level_db", "power",
                       "sample_rate", "trim_db"):
                continue
            if value != self.__dict__.get(key):
                raise SideFileError(f"{stats_path} (audio.stats_path): audio setting {key} is {value!r} in the "
                                    f"stats, {self.__dict__.get(key)!r} in the config")
        return stats["mel_mean"], stats["mel_std"], stats["linear_mean"], stats["linear_std"], config

    load_stats.ttsload_guard = True  # type: ignore[attr-defined]
    AudioProcessor.load_stats = load_stats
