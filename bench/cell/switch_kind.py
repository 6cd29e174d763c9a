"""The "switch" scenario kind: one process serving several models through an LRU of k loaded models.

The multi-lingual server: requests name a model in an interleaved pattern; a miss evicts the least
recently used model (when k are loaded) and loads the requested one with the strategy's loader.
Every load and eviction is an event, so the row can count them and time them; the tree's memory
samples give the peak. Runs in one resident process, so only resident strategies apply.
"""

from __future__ import annotations

import gc
import random
import time
from collections import OrderedDict

from ttsload.bench.cell.reporting import CellHook, RequestReporter, steady_then_trimmed
from ttsload.bench.cellspec import CellSpec
from ttsload.bench.drive import request_texts
from ttsload.bench.plan import Plan
from ttsload.strategies.base import LoadedModel, ModelFiles, StrategyError, malloc_trim, request_seed, serve_request
from ttsload.strategies.events import Event
from ttsload.strategies.registry import make_loader


def model_pattern(plan: Plan, count: int) -> list[int]:
    """Which model each request asks for: round-robin, or a seeded random draw."""
    models = len(plan.models)
    if plan.pattern == "round-robin":
        return [index % models for index in range(count)]
    rng = random.Random(plan.pattern_seed)
    return [rng.randrange(models) for _ in range(count)]


def run_switch(spec: CellSpec, hook: CellHook) -> None:
    strategy, plan = spec.strategy, spec.plan
    if not strategy.topology_class.serves_from_resident_model:
        raise StrategyError(f"the switch scenario keeps its models in one resident process: strategy "
                            f"'{strategy.name}' has topology '{strategy.topology}', which does not serve from a "
                            f"resident model (use singleton, mmap, quantized or resident+LOADER)")
    models = [ModelFiles.from_json(m) for m in plan.models]
    loaders = {m.name: make_loader(strategy.loader, m.family) for m in models}
    reporter = RequestReporter(hook, request_texts(spec.texts, plan))
    runtimes = {}  # one import phase per family the switch serves
    for model in models:
        if model.family not in runtimes:
            runtimes[model.family] = loaders[model.name].runtime_phase(plan.threads)
    hook(Event.IMPORTS_DONE, **next(iter(runtimes.values())), families=sorted(runtimes))
    hook(Event.READY, lru=plan.lru, models=[m.name for m in models])
    loaded: OrderedDict[str, LoadedModel] = OrderedDict()
    for index, choice in enumerate(model_pattern(plan, plan.request_count)):
        files = models[choice]
        start = time.monotonic()
        if files.name in loaded:
            loaded.move_to_end(files.name)
        else:
            while len(loaded) >= (plan.lru or 1):
                victim, _ = loaded.popitem(last=False)
                gc.collect()
                hook(Event.MODEL_EVICT, model=victim)
            hook(Event.MODEL_LOAD_START, model=files.name)
            loaded[files.name] = loaders[files.name].load(files, hook)
            hook(Event.MODEL_LOADED, model=files.name, load_s=time.monotonic() - start)
        text = reporter.text(index)
        hook(Event.REQUEST_START, index=index, model=files.name)
        audio = serve_request(loaded[files.name], text, request_seed(text))
        reporter.done(index, text, audio, time.monotonic() - start, model=files.name)
    steady_then_trimmed(hook, malloc_trim)  # every model lives in this one process
