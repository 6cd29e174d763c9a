"""The files of results folders other than their records (logs, profiles, stack dumps, audio, anything a run
writes there), merged into one folder without losing any and without two inputs' files sharing a name.

A file is placed at its path relative to its folder. When several inputs hold different contents under one
path (two machine classes each keep `audio/<strategy__model>/0.npy`; two shards each profile the same
cells), every version is kept as `<stem>@<tag>-<sha256[:8]><suffix>`, where the tag names the input by its
earliest run id: nothing is overwritten, and the result depends neither on the inputs' order nor on how often
a folder is merged again. What a run rebuilds from its records (summary.csv, the report folder), the records
themselves, the folder's lock and temp files of a killed writer are not copied. Symbolic links are never
followed, in the inputs or in the output.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import defaultdict
from pathlib import Path, PurePosixPath

from ttsload.bench.atomic import LOCK_NAME, is_temporary
from ttsload.bench.errors import UsageError
from ttsload.bench.results import RESULTS, SUMMARY

REBUILT = frozenset({RESULTS, SUMMARY, LOCK_NAME, "report"})  # top-level names merge never copies


def files(folder: Path) -> dict[str, Path]:
    """Every regular file under FOLDER as relative path -> path; symlinks (files or folders) left out."""
    found: dict[str, Path] = {}
    for root, folders, names in os.walk(folder):  # never descends into a linked folder
        here = Path(root)
        if here == folder:
            folders[:] = [f for f in folders if f not in REBUILT]
            names = [n for n in names if n not in REBUILT]
        for name in names:
            path = here / name
            if not path.is_symlink() and path.is_file() and not is_temporary(path):
                found[path.relative_to(folder).as_posix()] = path
    return found


def digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def tagged(relative: str, tag: str, sha: str) -> str:
    """The name a version of a file takes when the inputs disagree on that path's contents."""
    path = PurePosixPath(relative)
    return str(path.with_name(f"{path.stem}@{tag}-{sha[:8]}{path.suffix}"))


def merge_files(sources: list[tuple[Path, str]], out: Path) -> list[str]:
    """Copy the files of every (folder, tag) into OUT; return the paths whose versions were kept apart."""
    versions: dict[str, dict[str, tuple[Path, str]]] = defaultdict(dict)  # path -> sha256 -> (file, tag)
    for folder, tag in sources:
        for relative, path in files(folder).items():
            versions[relative].setdefault(digest(path), (path, tag))
    split = []
    for relative, found in sorted(versions.items()):
        if len(found) == 1:
            ((path, _),) = found.values()
            _place(path, out, relative)
            continue
        split.append(relative)
        for sha, (path, tag) in sorted(found.items()):
            _place(path, out, tagged(relative, tag, sha))
        if (out / relative).is_file() and not (out / relative).is_symlink():
            (out / relative).unlink()  # OUT was an input: its own version now lives under its tagged name
    return split


def _place(source: Path, out: Path, relative: str) -> None:
    target = out / relative
    if target == source or (target.is_file() and not target.is_symlink() and digest(target) == digest(source)):
        return
    for parent in [target, *target.parents]:
        if parent == out:
            break
        if parent.is_symlink():
            raise UsageError(f"{parent} is a symbolic link: refusing to copy {relative} through it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target, follow_symlinks=False)
