"""Loading a resident model in a server's master before it forks its workers (gunicorn --preload), shared by
the Flask app and the asgi app.

The master loads with ONE torch thread (libgomp hangs a child forked after a parallel region ran) and then
freezes the collector, so the workers share its pages; each worker sets the thread count returned here
right after the fork.
"""

from __future__ import annotations

import gc
from typing import Any

from ttsload.strategies.base import Hook, LoadedModel, Loader, ModelFiles, StrategyError
from ttsload.strategies.events import Event
from ttsload.strategies.registry import StrategySpec, make_loader


def load_for_fork(config: dict[str, Any], hook: Hook) -> tuple[LoadedModel, Loader, int | None]:
    """(the model, its loader, the workers' torch threads) from the server's settings (strategy, model, threads)."""
    spec = StrategySpec.from_json(config["strategy"])  # resolved by the caller: a server never parses a name
    if not spec.topology_class.serves_from_resident_model:
        raise StrategyError(f"--preload needs a topology that serves from a resident model: strategy "
                            f"'{spec.name}' is {spec.topology}")
    files = ModelFiles.from_json(config["model"])
    loader = make_loader(spec.loader, files.family)
    info = loader.runtime_phase(config.get("threads"))
    loader.prepare_fork()
    hook(Event.IMPORTS_DONE, **info)
    model = loader.load(files, hook)
    gc.collect()
    gc.freeze()
    return model, loader, info.get("torch_threads") or config.get("threads")
