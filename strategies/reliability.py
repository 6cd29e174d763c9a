"""The write-ups' reliability features as strategy options, composable with any topology and loader.

    naive:retry=3:backoff=0.5     singleton:fallback=mmap     prefork+mmap:liveness=3

- `retry=N` / `backoff=S`: a failed load is tried N times in all, waiting S, 2S, 4S ... between tries
  (events `load_retry`, `load_recovered`; after the last try one error listing every attempt).
- `fallback=LOADER`: a load or request that runs out of memory is done again with the lighter loader
  (event `load_fallback`). In-process OOM (MemoryError, torch's "can't allocate memory", CUDA OOM) is
  caught here; a worker killed by the kernel's OOM killer is restarted with the fallback loader by the
  pool that supervises it (bench/cell/pool.py), since a SIGKILLed process cannot catch anything.
- `liveness=S`: workers send a heartbeat separate from readiness; one silent for S seconds (hung, e.g.
  SIGSTOP) is killed and replaced, and its in-flight request goes to another worker (strategies/hosts.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ttsload.strategies.base import Audio, Hook, LoadedModel, Loader, ModelFiles, StrategyError
from ttsload.strategies.events import Event

if TYPE_CHECKING:
    from torch import nn

Result = TypeVar("Result")  # what cuda_to_cpu's call returns, on either device


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected an integer >= 1")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("expected a number of seconds > 0")
    return value


# Declared here, registered by strategies/options.py (this module imports neither it nor the registry, so no
# import cycle): key -> (one-line help, parser). `fallback` names a loader; the registry checks it exists.
OPTIONS: dict[str, tuple[str, Any]] = {
    "retry": ("tries in all for a failed load, with exponential backoff", _positive_int),
    "backoff": ("seconds before the first retry, doubling each time (default 0.5)", _seconds),
    "fallback": ("loader to use when a load or request runs out of memory", str),
    "liveness": ("seconds without a heartbeat before a worker counts as hung and is replaced", _seconds),
}
DEFAULT_BACKOFF_S = 0.5
# Faults the options claim to survive (the faults scenario runs a drill only against strategies that claim it).
CLAIMS = {"sigstop": "liveness", "oom": "fallback", "hide_checkpoint": "retry"}


def claims(option_map: dict[str, Any], drill: str) -> str | None:
    """Why a strategy does not claim to survive `drill` (the option it lacks), or None when it does."""
    needed = CLAIMS.get(drill)
    if needed and needed not in option_map:
        return f"does not claim to survive {drill}: it has no {needed}= option"
    return None


def out_of_memory(exc: BaseException | None) -> bool:
    """True when `exc` (or what it was raised from) is running out of memory, on the CPU or on CUDA."""
    while exc is not None:
        text = str(exc).lower()
        if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
                isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _reason(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())[:200]


class ReliableLoader(Loader):
    """Wraps a loader with retry-with-backoff and an out-of-memory fallback; what it did goes to the hook."""

    def __init__(self, inner: Loader, retry: int = 1, backoff_s: float = DEFAULT_BACKOFF_S,
                 fallback: Loader | None = None):
        self.inner, self.retry, self.backoff_s, self.fallback = inner, retry, backoff_s, fallback
        self.name, self.summary, self.family = inner.name, inner.summary, inner.family
        self.exact, self.maps_checkpoint = inner.exact, inner.maps_checkpoint

    def runtime_phase(self, threads: int | None) -> dict[str, Any]:
        return self.inner.runtime_phase(threads)

    def set_threads(self, threads: int) -> None:
        self.inner.set_threads(threads)

    def prepare_fork(self) -> None:
        self.inner.prepare_fork()

    def load(self, files: ModelFiles, hook: Hook) -> LoadedModel:
        loader, attempts, first_failure = self.inner, [], None
        attempt = 0
        while True:
            attempt += 1
            try:
                model = loader.load(files, hook)
            except Exception as exc:  # noqa: BLE001 - every failed load is retried or listed
                if self.fallback is not None and loader is not self.fallback and out_of_memory(exc):
                    hook(Event.LOAD_FALLBACK, loader=loader.name, to=self.fallback.name, during="load",
                         reason=_reason(exc))
                    loader = self.fallback
                    attempt -= 1
                    continue
                first_failure = first_failure or time.monotonic()
                attempts.append(f"#{attempt}: {_reason(exc)}")
                if attempt >= self.retry:
                    if self.retry == 1:
                        raise
                    hook(Event.LOAD_GAVE_UP, attempts=attempt)
                    raise StrategyError(f"load of {files.checkpoint} failed {attempt} times, giving up: "
                                        + "; ".join(attempts)) from exc
                wait = self.backoff_s * 2 ** (attempt - 1)
                hook(Event.LOAD_RETRY, attempt=attempt, wait_s=wait, reason=_reason(exc))
                time.sleep(wait)
                continue
            if first_failure is not None:
                hook(Event.LOAD_RECOVERED, attempts=attempt, recovery_s=time.monotonic() - first_failure)
            if self.fallback is None or loader is self.fallback:
                return model
            return FallbackModel(model, self.fallback, files, hook)


class FallbackModel:
    """A loaded model whose requests, on running out of memory, are served again by the fallback loader's copy."""

    def __init__(self, model: LoadedModel, fallback: Loader, files: ModelFiles, hook: Hook):
        self.model, self.fallback, self.files, self.hook = model, fallback, files, hook
        self.info = model.info

    def synthesize(self, text: str, seed: int) -> Audio:
        try:
            return self.model.synthesize(text, seed)
        except Exception as exc:
            if not out_of_memory(exc) or self.fallback is None:
                raise
            self.hook(Event.LOAD_FALLBACK, loader=self.info.get("loader", "?"), to=self.fallback.name,
                      during="request", reason=_reason(exc))
            self.model = None  # drop the heavy copy before loading the light one
            import gc

            gc.collect()
            self.model, self.fallback = self.fallback.load(self.files, self.hook), None
            self.info = self.model.info
            return self.model.synthesize(text, seed)


def wrap(loader: Loader, option_map: dict[str, Any], fallback: Loader | None = None) -> Loader:
    """The loader a strategy's options ask for (`fallback`: the loader `fallback=` names, made by the registry);
    the plain one when it has no reliability option."""
    if not {"retry", "fallback"} & set(option_map):
        return loader
    return ReliableLoader(loader, int(option_map.get("retry", 1)),
                          float(option_map.get("backoff", DEFAULT_BACKOFF_S)), fallback)


def cuda_to_cpu(module: nn.Module, call: Callable[[], Result], hook: Hook) -> Result:
    """Run `call()` on a CUDA module; on CUDA out-of-memory move the module to the CPU and run it again.

    The seed document's GPU → CPU fallback: the same `fallback` idea, for a device instead of a loader.
    """
    import torch

    try:
        return call()
    except torch.cuda.OutOfMemoryError as exc:
        hook(Event.LOAD_FALLBACK, loader="cuda", to="cpu", during="request", reason=_reason(exc))
        module.to("cpu")
        torch.cuda.empty_cache()
        return call()


def checkpoint_state(path: Path, expected: str) -> str:
    """One line on the checkpoint on disk against the sha256 the model was verified with."""
    from ttsload.strategies.base import sha256_of

    if not path.is_file():
        return f"{path} is gone"
    actual = sha256_of(path)
    if actual == expected:
        return "unchanged"
    return f"{path} now has sha256 {actual[:12]}... (verified {expected[:12]}...)"


def memory_cgroup(pid: int | str = "self") -> Path | None:
    """The memory cgroup folder of a process (v1 memory controller, or the v2 unified tree), if readable."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    for line in lines:
        if line.startswith("0::"):
            return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    return None


def oom_kills(folder: Path | None = None) -> int:
    """How many processes the kernel's OOM killer has killed in this process's memory cgroup (0 if unknown)."""
    folder = folder or memory_cgroup()
    for name in ("memory.oom_control", "memory.events"):  # v1, v2
        try:
            for line in (folder / name).read_text().splitlines() if folder else ():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except OSError:
            continue
    return 0
