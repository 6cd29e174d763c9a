"""How ttsload starts its own Python processes: by module path, immune to the caller's working directory,
with their input handed over by descriptor (spec_fd), and ended with their parent (die_with_parent).

`python -m` puts the working directory first on sys.path, so a user's own `bench/` or `ttsload/`
folder there would be imported in place of ours. `-P` (Python >= 3.11, PYTHONSAFEPATH) leaves it
out; on 3.10 the same is done by clearing sys.path[0] in the child's first lines.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

SAFE_PATH = ["-P"] if sys.version_info >= (3, 11) else []


def python_module(module: str, *args: str, interpreter_args: list[str] | None = None) -> list[str]:
    """The command line that runs `python -m module args...` without the working directory on sys.path."""
    return [sys.executable, *SAFE_PATH, *(interpreter_args or []), "-m", module, *args]


def package_root() -> Path:
    """The folder that holds the `ttsload` package (site-packages, or src/ in an editable install).

    Tools that put a folder of their choosing on sys.path (gunicorn's --chdir) are pointed here.
    """
    import ttsload

    return Path(ttsload.__file__).resolve().parent.parent


def spec_fd(data: dict[str, Any]) -> int:
    """A descriptor of an anonymous file holding `data` as JSON, for a child to read (pass_fds) at start.

    A spec (the request texts included) is unbounded, and Linux caps one argv string at 128 KiB: a spec
    travels as a file with no name (memfd, else an unlinked temp file), so nothing is left on disk.
    """
    payload = json.dumps(data).encode("utf-8")
    try:
        fd = os.memfd_create("ttsload-spec", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # no memfd (not Linux, old kernel): an unlinked temp file
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_spec(fd: int) -> Any:
    """The JSON a parent handed over with spec_fd (the descriptor is closed after)."""
    with os.fdopen(fd, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(expected_parent: int | None = None) -> bool:
    """SIGKILL this process when its parent dies (Linux PR_SET_PDEATHSIG); False where that is unavailable.

    The kernel tracks the parent *thread* that forked us, so only a process started from its parent's main
    thread may use this. If the parent died before the call (our parent is no longer `expected_parent`),
    this process ends now.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os.kill(os.getpid(), signal.SIGKILL)
    return True
