"""The thin layer over Coqui TTS every loader shares: imports, construction modes, synthesis.

All model classes, configs and the eager checkpoint loader are Coqui's own; this module only
decides *how* a model object is constructed (Coqui's random init, init skipped, or on the meta
device) and turns a request into float32 audio with a fixed seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsload.strategies.audio import by_sentence
from ttsload.strategies.base import Audio, StrategyError

# Modules the first VITS construction imports lazily (librosa.filters pulls scipy.signal, ~1.3 s).
# Importing them with the rest of the runtime makes "construct" measure construction alone, the
# same way for every loader; cold start as a whole is unchanged. A second construction in the same
# process takes a fraction of the first: the rest is these one-time imports.
_RUNTIME_MODULES = (
    "torch",
    "TTS.config",
    "TTS.tts.models",
    "TTS.tts.models.vits",
    "trainer.io",
    "librosa.filters",
    "scipy.signal",
)


def import_runtime(threads: int | None = None, modules: tuple[str, ...] = _RUNTIME_MODULES) -> dict[str, Any]:
    """Import torch and Coqui (`modules`) up front; set the thread count; return facts about the runtime."""
    import importlib
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    for module in modules:
        importlib.import_module(module)
    import torch

    if threads:
        torch.set_num_threads(threads)
    # str(): torch.__version__ is a TorchVersion, and unpickling one imports all of torch.
    return {"torch_threads": torch.get_num_threads(), "torch": str(torch.__version__)}


@dataclass
class CoquiModel:
    """A Coqui model ready for inference plus what the loader did to it (a base.LoadedModel)."""

    model: Any
    config: Any
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return int(self.config.audio["sample_rate"])

    def synthesize(self, text: str, seed: int) -> Audio:
        """Run Coqui's own `synthesize` with a fixed seed; returns float32 audio."""
        import torch

        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.synthesize(text, use_griffin_lim=True)
        wav = out.get("wav")
        if wav is None:
            raise StrategyError(f"{type(self.model).__name__}.synthesize returned no waveform")
        wav = wav.float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
        return Audio(np.ascontiguousarray(wav, dtype=np.float32).reshape(-1), self.sample_rate)

    stream_kind = "sentence"

    def synthesize_stream(self, text: str, seed: int) -> Iterator[Audio]:
        """Sentence by sentence, split as Coqui's `Synthesizer` splits (pysbd, the model's first language)."""
        return by_sentence(self.synthesize, coqui_sentences(text, self.model), seed)


def coqui_sentences(text: str, model: Any) -> list[str]:
    """The sentences Coqui's `Synthesizer.split_into_sentences` makes of `text`: a pysbd segmenter (clean=True)
    for the model's first language, English where pysbd has no segmenter for it."""
    import pysbd

    manager = getattr(model, "language_manager", None)
    names = list(getattr(manager, "language_names", None) or ["en"])
    language = names[0].split("-")[0].lower()
    if language not in pysbd.languages.LANGUAGE_CODES:
        language = "en"
    return [str(s) for s in pysbd.Segmenter(language=language, clean=True).segment(text)]


def load_coqui_config(path: Any) -> Any:
    """Coqui's config loader, with its errors turned into one line naming the file; every file the config
    names is pointed at the copy ttsload verified (side_files.pin), or refused."""
    from pathlib import Path

    from TTS.config import load_config

    from ttsload.strategies import side_files

    try:
        config = load_config(str(path))
    except Exception as exc:  # Coqui raises many types for a bad config
        raise StrategyError(f"cannot read Coqui config {path}: {type(exc).__name__}: {exc}") from exc
    side_files.pin(config, Path(path))
    return config


def construct(config: Any, mode: str = "init", setup: Callable[[Any], Any] | None = None) -> Any:
    """Build the model class Coqui's config names (`setup`: Coqui's builder, its TTS `setup_model` by default).

    mode "init": Coqui's path, parameters randomly initialised (what `load_checkpoint` overwrites).
    mode "skip": parameters allocated but not initialised: untouched `torch.empty` pages cost
    almost nothing and are replaced by `load_state_dict(assign=True)`.
    mode "meta": parameters on the meta device (accelerate.init_empty_weights), buffers real.
    """
    if setup is None:
        from TTS.tts.models import setup_model as setup
    with construction(mode):
        return setup(config)


@contextlib.contextmanager
def construction(mode: str) -> Iterator[None]:
    """The context a Coqui model is constructed in for `mode` (init, skip, meta; see `construct`)."""
    if mode not in ("init", "skip", "meta"):
        raise ValueError(f"unknown construction mode {mode!r}")
    if mode == "init":
        yield
    elif mode == "skip":
        with skip_parameter_init():
            yield
    else:
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False):
            yield


def require_weights_only() -> None:
    """Refuse Coqui's own loader when its trainer would unpickle checkpoints with weights_only=False."""
    import trainer.io

    if not getattr(trainer.io, "_WEIGHTS_ONLY", False):
        raise StrategyError("this Coqui trainer would unpickle with weights_only=False; refusing to load")


@contextlib.contextmanager
def skip_parameter_init() -> Iterator[None]:
    """Make torch.nn.init's in-place initialisers no-ops while a model is constructed."""
    import torch.nn.init as init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    saved = {name: getattr(init, name) for name in names}

    def keep(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    try:
        for name in names:
            setattr(init, name, keep)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def read_state(path: Any, mmap: bool = True) -> dict[str, Any]:
    """The state dict of a Coqui checkpoint ({"model": state_dict, ...} or a bare state dict),
    read with weights_only=True and, by default, mapped rather than copied."""
    import torch

    checkpoint = torch.load(path, mmap=mmap, weights_only=True, map_location="cpu")
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise StrategyError(f"{path} holds no state dict (expected a 'model' entry)")
    return state


def read_safetensors_aligned(path: Any) -> tuple[dict[str, Any], int]:
    """A safetensors file's tensors, each in 64-byte-aligned memory, and how many bytes had to be copied.

    safetensors places tensors at 8-byte offsets of the file; oneDNN/BLAS take other code paths on
    such weights, and the fp32 audio of Tacotron2's LSTMs and XTTS's GPT then differs from eager's
    in the last bits. Unaligned tensors are copied (as torch.load's always are), and the copy is
    reported, since it is memory this loader then holds.
    """
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    unaligned = [key for key, value in state.items() if value.data_ptr() % 64]
    for key in unaligned:
        state[key] = state[key].clone()
    return state, sum(state[key].numel() * state[key].element_size() for key in unaligned)


def coqui_state_fixups(model: Any, state: dict[str, Any]) -> dict[str, Any]:
    """What Coqui's VITS `load_checkpoint` does to a state dict before loading it.

    Kept for the loaders that bypass `load_checkpoint` (mmap, safetensors), so they load the
    same tensors: speaker-encoder weights are dropped (they are not part of the model).
    """
    return {k: v for k, v in state.items() if "speaker_encoder" not in k}


def finish_for_inference(model: Any) -> Any:
    """Switch to eval mode the way Coqui's `load_checkpoint(eval=True)` does."""
    if getattr(getattr(model, "args", None), "encoder_sample_rate", None) is not None:
        model.audio_resampler = None
    model.eval()
    return model
