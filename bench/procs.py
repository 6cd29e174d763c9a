"""How ttsload starts its own Python processes: by module path, immune to the caller's working directory.

`python -m` puts the working directory first on sys.path, so a user's own `bench/` or `ttsload/`
folder there would be imported in place of ours. `-P` (Python >= 3.11, PYTHONSAFEPATH) leaves it
out; on 3.10 the same is done by clearing sys.path[0] in the child's first lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
