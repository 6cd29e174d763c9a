"""The contracts, free of any one model family: model files, the event hook, audio, a loaded model,
Loader (with the public phase template every loader can reuse) and Topology (with its capabilities).

A third-party loader subclasses `PhasedLoader` and gets the phase events, the sha256 check and
profiler attribution without copying code; it needs nothing of Coqui. Every phase runs inside a
method of this file whose name ends in `_phase` (and every request through `serve_request`), so
py-spy's cold-start breakdown finds a plugin's phases wherever the plugin lives.
"""

from __future__ import annotations

import abc
import ctypes
import os
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from ttsload.strategies import stream_choice

# Defined in audio.py (no torch, no contracts), re-exported here beside the contracts that use them.
from ttsload.strategies.audio import STREAM_KINDS as STREAM_KINDS
from ttsload.strategies.audio import Audio as Audio
from ttsload.strategies.audio import AudioStream as AudioStream
from ttsload.strategies.audio import StreamingModel as StreamingModel
from ttsload.strategies.events import Event
from ttsload.strategies.integrity import Fingerprint as Fingerprint
from ttsload.strategies.integrity import StrategyError as StrategyError
from ttsload.strategies.integrity import sha256_of as sha256_of
from ttsload.strategies.integrity import unchanged as unchanged
from ttsload.strategies.integrity import verify_files as verify_files


class Hook(Protocol):
    """Called by strategies at phase boundaries: hook(Event.WEIGHTS_DONE, bytes=...).

    `t` (time.monotonic of the process that saw the event) is passed when an event is relayed
    from another process, so the harness keeps the time it really happened.
    """

    # Fields are written to the event log as they are (numbers, strings, dicts of them): the hook reads none.
    def __call__(self, event: str, t: float | None = None, **fields: object) -> None: ...


def null_hook(event: str, t: float | None = None, **fields: object) -> None:
    """A hook for callers that do not measure (tests, library use)."""


class UnknownStrategy(ValueError):
    """A strategy name that is neither a preset nor a TOPOLOGY+LOADER combination."""


def request_seed(text: str) -> int:
    """Seed derived from the text alone, so the same text gives the same audio in any order and process."""
    return zlib.crc32(text.encode("utf-8"))


@dataclass(frozen=True)
class ModelFiles:
    """A model on disk plus the sha256 every file must have before it is read.

    `config` and `checkpoint` are the two files every family has in some form; `safetensors` is the
    optional second copy of the weights some loaders read instead; `extras` holds a family's other
    files by role (Kokoro's voice pack, an ONNX model's pre-optimized graph).
    """

    name: str
    config: Path
    checkpoint: Path
    sha256: dict[str, str]  # file name -> expected hex digest
    safetensors: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    family: str = "coqui"
    extras: dict[str, Path] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "config": str(self.config),
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "safetensors": str(self.safetensors) if self.safetensors else None,
            "meta": self.meta,
            "extras": {role: str(path) for role, path in self.extras.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelFiles:
        return cls(
            name=data["name"],
            config=Path(data["config"]),
            checkpoint=Path(data["checkpoint"]),
            sha256=dict(data["sha256"]),
            safetensors=Path(data["safetensors"]) if data.get("safetensors") else None,
            meta=dict(data.get("meta") or {}),
            family=data.get("family", "coqui"),
            extras={role: Path(path) for role, path in (data.get("extras") or {}).items()},
        )

    def files(self) -> list[Path]:
        paths = [self.config, self.checkpoint]
        return paths + ([self.safetensors] if self.safetensors else []) + list(self.extras.values())

    def extra(self, role: str) -> Path:
        """A family file by role; a missing one is a one-line error naming the role and the model."""
        if role not in self.extras:
            raise StrategyError(f"model '{self.name}' ({self.family}) has no {role} file next to {self.checkpoint}")
        return self.extras[role]


_JEMALLOC_ALL_ARENAS = b"arena.4096.purge"  # MALLCTL_ARENAS_ALL (jemalloc 5): purge every arena


def malloc_trim() -> bool:
    """Ask the allocator to give freed heap back to the OS; tells allocator retention apart from leaks.

    glibc's malloc_trim(0), and when jemalloc is preloaded (`alloc=jemalloc`) a purge of its arenas,
    which glibc's call would not touch.
    """
    returned = False
    try:
        returned = bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        pass
    try:
        process = ctypes.CDLL(None)
        if hasattr(process, "mallctl"):
            purged = process.mallctl(_JEMALLOC_ALL_ARENAS, None, None, None, ctypes.c_size_t(0)) == 0
            returned = returned or purged
    except OSError:
        pass
    return returned


@runtime_checkable
class LoadedModel(Protocol):
    """What a loader returns: a model that turns (text, seed) into audio, plus what the loader did.

    `info` holds the facts the results need: `params`, `dtypes` (parameter count per dtype),
    `file_bytes` (bytes of the files read), and anything a conversion reports (int8_fraction, ...).
    """

    info: dict[str, Any]

    def synthesize(self, text: str, seed: int) -> Audio: ...


def serve_request(model: LoadedModel, text: str, seed: int) -> Audio:
    """Every topology serves a request through here (profilers attribute first synthesis to it), in
    whichever process holds the model, so a per-request runtime control (`trim=N`) acts there too."""
    audio = model.synthesize(text, seed)
    after_request()
    return audio


def serve_stream(model: LoadedModel, text: str, seed: int) -> AudioStream:
    """serve_request's streaming counterpart: the model's own chunks where it streams (a StreamingModel),
    else the whole clip as one chunk; the per-request controls run when the stream ends or is closed."""
    kind = model_stream_kind(model)
    return AudioStream(stream_request(model, text, seed, kind), kind)


def stream_request(model: LoadedModel, text: str, seed: int, kind: str) -> Iterator[Audio]:
    """The chunks of one streamed request (profilers attribute first synthesis to it, as to serve_request)."""
    try:
        if kind == "none":
            yield model.synthesize(text, seed)
        else:
            yield from model.synthesize_stream(text, seed)  # type: ignore[attr-defined]
    finally:
        after_request()


def model_stream_kind(model: LoadedModel) -> str:
    """How serve_stream chunks this model: "none" when the `stream=none` option asks for whole clips, else its
    own `stream_kind` where it streams (which may follow `stream=`), else "none". A kind asked for that the
    model cannot give is a StrategyError naming both."""
    asked = stream_choice.chosen()
    own = getattr(model, "stream_kind", "none") if hasattr(model, "synthesize_stream") else "none"
    if asked is None or asked == "none":
        return asked or own
    if asked != own:
        name = type(model).__name__
        raise StrategyError(f"strategy option stream={asked}: {name} streams {own!r} (it offers "
                            f"{', '.join(getattr(model, 'stream_kinds', (own,)))}, or none)")
    return own


TRIM_EVERY = "TTSLOAD_TRIM_EVERY"  # the `trim=N` option (strategies/allocator.py), inherited by every worker


class _Served:
    """Requests served by this process; a forked child starts its own count."""

    def __init__(self) -> None:
        self.lock, self.count, self.pid = threading.Lock(), 0, os.getpid()


_served = _Served()


def after_request() -> bool:
    """After each request this process serves: malloc_trim(0) every TTSLOAD_TRIM_EVERY requests, if set."""
    global _served
    every = os.environ.get(TRIM_EVERY)
    if not every:
        return False
    if _served.pid != os.getpid():
        _served = _Served()
    with _served.lock:
        _served.count += 1
        due = _served.count % int(every) == 0
    return malloc_trim() if due else False


class Tensor(Protocol):
    """What tensor_facts reads of a parameter (a torch tensor has it; base.py imports no torch)."""

    dtype: object

    def numel(self) -> int: ...


@runtime_checkable
class HasParameters(Protocol):
    """A model whose weights are parameters: a torch module."""

    def parameters(self) -> Iterable[Tensor]: ...


def tensor_facts(module: HasParameters) -> dict[str, Any]:
    """Parameter count and dtype mix of a torch module (buffers left out: they are not weights)."""
    dtypes: dict[str, int] = {}
    for parameter in module.parameters():
        name = str(parameter.dtype).removeprefix("torch.")
        dtypes[name] = dtypes.get(name, 0) + parameter.numel()
    return {"params": sum(dtypes.values()), "dtypes": dtypes}


class Loader(abc.ABC):
    """How weights reach memory. Subclasses return a model ready to synthesize."""

    name: ClassVar[str]
    summary: ClassVar[str]
    family: ClassVar[str] = "coqui"  # the model family it loads (strategies/families/__init__.py)
    exact: ClassVar[bool] = True  # fp32 weights and compute: output bit-identical to the family's own path
    maps_checkpoint: ClassVar[bool] = False  # weights stay in a file mapping (resident only where touched)

    def runtime_phase(self, threads: int | None) -> dict[str, Any]:
        """Import the runtime this loader's models need, before any load is timed."""
        return self.import_runtime(threads)

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        """Import torch (and whatever the family needs); set the thread count; return facts for the results."""
        import torch

        if threads:
            torch.set_num_threads(threads)
        # str(): torch.__version__ is a TorchVersion, and unpickling one imports all of torch.
        return {"torch_threads": torch.get_num_threads(), "torch": str(torch.__version__)}

    def set_threads(self, threads: int) -> None:
        """The compute threads of this process (a forked child sets its own)."""
        import torch

        torch.set_num_threads(threads)

    def prepare_fork(self) -> None:
        """Make this process safe to fork serving children from, before it loads.

        torch's libgomp cannot survive a fork once a parallel region has run (the child waits
        forever on the parent's thread team), so a torch parent computes with one thread.
        """
        self.set_threads(1)

    @abc.abstractmethod
    def load(self, files: ModelFiles, hook: Hook) -> LoadedModel:
        """Verify, construct and fill a model, emitting the phase events."""


Model = TypeVar("Model")  # what a loader's construct() builds and fill() fills: a torch module for most families


class PhasedLoader(Loader, Generic[Model]):
    """The phase template: verify (sha256) → construct → fill → convert, one event after each.

    Subclasses implement `construct` and `fill`, and `ready` to wrap the filled model; `weight_files`
    (what is verified besides the config) and `convert` (precision changes) are optional. `describe`,
    `import_runtime` and `set_threads` default to torch: a loader of a model that is not a torch module
    overrides them (docs/families.md lists the methods).
    Failures become one-line StrategyErrors naming the file.
    """

    def weight_files(self, files: ModelFiles) -> list[Path]:
        return [files.checkpoint]

    def load(self, files: ModelFiles, hook: Hook) -> LoadedModel:
        hook(Event.LOAD_START, loader=self.name)
        paths = [files.config, *self.weight_files(files)]
        seen = self.verify_phase(files, paths)
        hook(Event.VERIFY_DONE)
        model = self.construct_phase(files)
        hook(Event.CONSTRUCT_DONE, **self.construct_facts())
        unchanged(seen, "after it was verified")  # before mapping: a truncated mapped file would SIGBUS
        model = self.weights_phase(model, files)
        unchanged(seen, "while it was loaded")
        info = {"params": self.describe(model)["params"], "file_bytes": sum(p.stat().st_size for p in paths)}
        info.update(self.convert_phase(model))
        info["dtypes"] = self.describe(model)["dtypes"]  # what stays resident, after any conversion
        hook(Event.WEIGHTS_DONE, **info)
        return self.ready(model, files, info)

    def verify_phase(self, files: ModelFiles, paths: list[Path]) -> dict[Path, Fingerprint]:
        """sha256 of every file read, then the files the configs name (read by ttsload's safe code first)."""
        from ttsload.strategies import side_files

        seen = verify_files(files, paths)
        side_files.check(files)
        return seen

    def construct_phase(self, files: ModelFiles) -> Model:
        try:
            return self.construct(files)
        except StrategyError:
            raise
        except Exception as exc:
            raise StrategyError(f"cannot construct the model of {files.config}: {type(exc).__name__}: {exc}") from exc

    def weights_phase(self, model: Model, files: ModelFiles) -> Model:
        try:
            return self.fill(model, files)
        except StrategyError:
            raise
        except Exception as exc:
            from ttsload.strategies import load_errors

            raise StrategyError(load_errors.describe(self.weight_files(files)[0], exc)) from exc

    def convert_phase(self, model: Model) -> dict[str, Any]:
        return self.convert(model)

    @abc.abstractmethod
    def construct(self, files: ModelFiles) -> Model:
        """Build the model object (no weights read yet)."""

    @abc.abstractmethod
    def fill(self, model: Model, files: ModelFiles) -> Model:
        """Put the checkpoint's weights into the model; return the model ready for inference."""

    @abc.abstractmethod
    def ready(self, model: Model, files: ModelFiles, info: dict[str, Any]) -> LoadedModel:
        """Wrap the filled model as a LoadedModel."""

    def construct_facts(self) -> dict[str, Any]:
        """Fields of the construct_done event (e.g. how the model was constructed)."""
        return {}

    def describe(self, model: Model) -> dict[str, Any]:
        """Parameter count and dtype mix of the filled model (torch modules by default; a family whose model
        has no parameters() overrides this). A StrategyError, not a TypeError: the cell records one line
        that names the fix for the family's author."""
        if not isinstance(model, HasParameters):
            raise StrategyError(f"{type(self).__name__}.describe: a {type(model).__name__} is not a torch module "
                                "(no parameters()): override describe(model) to return "
                                "{'params': N, 'dtypes': {dtype: N}} for a model that is not a torch module")
        return tensor_facts(model)

    def convert(self, model: Model) -> dict[str, Any]:
        """Post-load conversion (precision); returns facts for the results."""
        return {}


class Topology(abc.ABC):
    """Where the loaded model lives and how a request reaches it.

    The capabilities below let the harness treat a third-party topology by what it can do,
    never by its name.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    # Loads once in this process and can fork serving children that share its pages (a pool forks from it).
    forks_from_loaded_parent: ClassVar[bool] = False
    # Holds the imported runtime but no model, and forks serving children that each load (a pool forks from it).
    forks_from_template: ClassVar[bool] = False
    # Serves from a model resident in the calling process (what an in-process LRU or gunicorn --preload needs).
    serves_from_resident_model: ClassVar[bool] = False
    # Serves from a model held by a child process (in-process profilers do not see that model).
    serves_from_child_process: ClassVar[bool] = False

    def __init__(self, loader: Loader, files: ModelFiles, hook: Hook, threads: int | None = None,
                 workers: int = 1):
        self.loader = loader
        self.files = files
        self.hook = hook
        self.threads = threads
        self.workers = workers  # serving processes; only multi-process topologies (prefork) use it

    @abc.abstractmethod
    def start(self) -> None:
        """Bring the serving side up (imports, and the load where the topology loads up front)."""

    @abc.abstractmethod
    def synthesize(self, text: str, seed: int) -> Audio:
        """Serve one request; the same (text, seed) must give the same audio for fp32 loaders."""

    @property
    def stream_kind(self) -> str:
        """How `synthesize_stream` chunks once started (STREAM_KINDS); "none" unless the topology streams."""
        return "none"

    def synthesize_stream(self, text: str, seed: int) -> AudioStream:
        """Serve one request as audio chunks. This default cannot stream: one chunk, the whole clip
        (kind "none"), made when the first chunk is asked for."""
        return AudioStream((self.synthesize(text, seed) for _ in range(1)), "none")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless a topology holds resources
        """Release the model and any helper processes."""

    def fork(self, worker: int) -> Any:
        """One more serving child forked from this process (needs forks_from_loaded_parent or forks_from_template).

        Returns a `hosts.PipeClient`; a pool calls it after `start()` for each worker it wants.
        """
        raise NotImplementedError(f"topology '{self.name}' does not fork from a loaded parent")

    def trim(self) -> bool:
        """Give freed heap back to the OS in every process of the topology (glibc malloc_trim(0))."""
        return malloc_trim()

    def __enter__(self) -> Topology:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
