"""Run a server's module (`python -m ttsload.bench.serving.launch PARENT_PID MODULE ARGS...`) in a process that
dies with the one that started it.

The asgi app sets PR_SET_PDEATHSIG in every process that imports it, but uvicorn's supervisor with `--workers N`
never imports the app (only its workers do), so a killed owner (`ttsload serve`, a cell) would leave the
supervisor and its workers serving. Setting it here, before the module's main runs, covers every stack.
"""

from __future__ import annotations

import runpy
import sys

from ttsload.bench.procs import die_with_parent


def main(argv: list[str]) -> None:
    parent, module, *args = argv
    die_with_parent(int(parent))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
