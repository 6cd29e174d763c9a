"""One line for every way a checkpoint fails to load: what is wrong, with which file.

torch's own messages run over many lines, and some mislead: a refused pickle ends with advice to
re-run with weights_only=False (that is, to run the payload), an empty file gives "EOFError:" and
nothing else, and under mmap an empty file is blamed on the serialisation format. The loaders keep
the original exception chained (its full text goes to the cell's log); the reason recorded in the
results is the line built here.
"""

from __future__ import annotations

import re
from pathlib import Path

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_SHAPE = re.compile(r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]*)\]\) "
                    r"from checkpoint, the shape in current model is torch\.Size\(\[([\d, ]*)\]\)")
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: (.*?)\.(?:\s|$)", re.S)
MAX_CHARS = 400


def describe(path: Path, exc: BaseException) -> str:
    """The one-line reason `path` could not be loaded, from the exception the load raised."""
    text = str(exc)
    try:
        size = path.stat().st_size
    except OSError as missing:
        return f"{path} cannot be read: {missing.strerror or type(missing).__name__}"
    if size == 0:
        return f"{path} is empty (0 bytes): not a checkpoint"
    if "Weights only load failed" in text or type(exc).__name__ == "UnpicklingError":
        named = _GLOBAL.search(text)
        what = f"references code ({named.group(1)})" if named else "holds objects other than tensors"
        return f"{path} was refused: its pickle {what}; ttsload never unpickles code, so it will not be loaded"
    if "central directory" in text or "PytorchStreamReader" in text or "zip archive" in text:
        return f"{path} is not a complete torch checkpoint ({size} bytes): truncated or corrupt zip archive"
    shapes = _SHAPE.findall(text)
    if shapes:
        name, in_file, in_model = shapes[0]
        more = f" (and {len(shapes) - 1} more tensors)" if len(shapes) > 1 else ""
        return f"{path}: {name} has shape [{in_file}] in the file, [{in_model}] in the model{more}"
    keys = _KEYS.findall(text)
    if keys:
        return f"{path}: " + "; ".join(f"{kind.lower()} tensors {_first(names)}" for kind, names in keys)
    return _one_line(f"{path}: {type(exc).__name__}: {text}")


def _first(names: str, count: int = 5) -> str:
    listed = [name.strip().strip('"') for name in names.split(",") if name.strip()]
    return ", ".join(listed[:count]) + (f" ... ({len(listed)} in all)" if len(listed) > count else "")


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 3] + "..."
