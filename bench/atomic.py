"""Files written all or nothing, and folders one run writes at a time.

`replacing(path)` writes a uniquely named temp file beside `path` (two writers never share one), fsyncs it,
renames it over `path` and fsyncs the folder, so a reader, or a run after a crash, sees the old file or the new
one, never a torn one. `append_line` adds one line to a JSON-lines store under an exclusive lock, first cutting
a torn tail a killed writer left. `FolderLock` is an exclusive flock on a folder's lock file, held for a
run's lifetime and dropped by the kernel when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from ttsload.bench.errors import UsageError

TEMP_SUFFIX = ".tmp"
LOCK_NAME = ".ttsload.lock"
TAIL_BYTES = 1 << 20  # how far back append_line looks for the end of the last whole line


def is_temporary(path: Path) -> bool:
    """A temp file `replacing` made (left behind only by a killed writer): never part of a folder's content."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


@contextmanager
def replacing(path: Path, mode: str = "w", **open_args: Any) -> Iterator[IO[Any]]:
    """Open a temp file to write in place of `path`; on a clean exit it replaces `path` atomically and durably."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        try:
            os.fchmod(fd, path.stat().st_mode & 0o7777)  # a rewrite keeps the file's mode
        except FileNotFoundError:
            os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a team
        with os.fdopen(fd, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(name)
        raise
    _fsync_folder(path.parent)


def write_text(path: Path, text: str) -> None:
    with replacing(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def append_line(path: Path, line: str) -> None:
    """Append one whole line (no newline in `line`) under an exclusive lock, fsynced.

    A writer killed mid-line leaves a tail with no newline: it is cut before appending, so one killed write
    never corrupts the next line, and readers may skip an unterminated last line as still being written.
    """
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - TAIL_BYTES)
        handle.seek(start)
        tail = handle.read()
        if tail and not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            if cut >= 0 or start == 0:
                handle.truncate(start + cut + 1)  # back to the end of the last whole line (or to empty)
            else:
                handle.write(b"\n")  # a torn line longer than the window: at least start on a fresh line
        handle.seek(0, os.SEEK_END)
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


class FolderLock:
    """An exclusive lock on a results folder (created if missing), held until `release` or the process ends."""

    def __init__(self, folder: Path, flag: str = "--out"):
        self.folder = folder
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{flag} {folder}: is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._handle = open(folder / LOCK_NAME, "a+")
        except OSError as exc:
            raise UsageError(f"{flag} {folder}: cannot create or open the folder ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "unknown"
            self._handle.close()
            raise UsageError(f"{flag} {folder}: another ttsload run (pid {holder}) is writing there; wait for it "
                             "or give another folder") from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(str(os.getpid()))
        self._handle.flush()

    def release(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
