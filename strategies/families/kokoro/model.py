"""The Kokoro family (StyleTTS2 / iSTFTNet) through kokoro's own `KModel`: imports, construction,
strict loading, request input and synthesis.

Requests are phoneme strings in the model's own vocabulary, so no G2P model is needed: a request's
text is lower-cased and every character that is a symbol of the vocabulary is kept (Latin letters,
punctuation and space are; `g` is written `ɡ` there), cut into KPipeline's segments of at most
MAX_PHONEMES; the whole clip is the segments joined. Leaving G2P out
is deliberate: misaki's English G2P would download a spaCy model, and its cost is the same for
every loading strategy. Fixtures bake a fixed duration into the weights (every phoneme lasts the
same number of frames), since random weights predict arbitrary durations.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttsload.strategies.audio import by_sentence, concatenate
from ttsload.strategies.base import Audio, ModelFiles, StrategyError

SUBMODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
SAMPLE_RATE = 24000
MAX_PHONEMES = 80  # symbols per segment: with one 25 ms frame per phoneme, at most ~2 s of audio
REPO_ID = "hexgrad/Kokoro-82M"  # only names the model to KModel: config and weights are given, nothing is fetched
LETTER_FOR = {"g": "\u0261"}  # Latin letters written differently in Kokoro's vocabulary


def import_kmodel() -> Any:
    """kokoro.model.KModel without running kokoro/__init__ (which imports misaki's G2P and spaCy).

    The package object is registered with its search path but its __init__ never executes; the
    submodules KModel needs (model, modules, istftnet, custom_stft) import as usual.
    """
    if "kokoro.model" in sys.modules:
        return sys.modules["kokoro.model"].KModel
    if "kokoro" not in sys.modules:
        spec = importlib.util.find_spec("kokoro")
        if spec is None:
            raise StrategyError("the kokoro package is not installed: pip install kokoro==0.9.4")
        package = importlib.util.module_from_spec(spec)
        package.__path__ = list(spec.submodule_search_locations or [])
        sys.modules["kokoro"] = package
    from loguru import logger

    logger.disable("kokoro")  # what kokoro/__init__ would do
    return importlib.import_module("kokoro.model").KModel


def import_runtime(threads: int | None) -> dict[str, Any]:
    """torch, then transformers' ALBERT (KModel subclasses it), then KModel; seconds of each in the result."""
    import os
    import time

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seconds: dict[str, float] = {}
    for module, step in (("torch", lambda: importlib.import_module("torch")),
                         ("transformers", lambda: importlib.import_module("transformers.models.albert")),
                         ("kokoro.model", import_kmodel)):
        start = time.monotonic()
        step()
        seconds[module] = round(time.monotonic() - start, 3)
    import torch

    if threads:
        torch.set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads(), "torch": str(torch.__version__), "import_s_by_module": seconds}


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StrategyError(f"cannot read Kokoro config {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(config, dict) or "vocab" not in config:
        raise StrategyError(f"{path} is not a Kokoro config (no 'vocab')")
    return config


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Construct without initialising parameters: transformers' no_init_weights (which also reaches
    ALBERT's own init) plus kokoro's iSTFTNet conv init, a module global."""
    import kokoro.istftnet as istftnet
    from transformers.initialization import no_init_weights

    original = istftnet.init_weights
    istftnet.init_weights = lambda *args, **kwargs: None
    try:
        with no_init_weights():
            yield
    finally:
        istftnet.init_weights = original


def construct(config: dict[str, Any], empty_checkpoint: Path, mode: str) -> Any:
    """KModel from its config; `empty_checkpoint` holds torch.save({}), so KModel's own loader reads nothing.

    mode "init": kokoro's path (random init); "skip": init skipped, parameters allocated; "meta":
    parameters on the meta device, so construction allocates and computes nothing for them, not
    even the norms that old-style weight_norm computes from the random weights (buffers stay real).
    """
    kmodel = import_kmodel()
    if mode == "init":
        return kmodel(repo_id=REPO_ID, config=config, model=str(empty_checkpoint))
    if mode not in ("skip", "meta"):
        raise ValueError(f"unknown construction mode {mode!r}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(skip_init())
        if mode == "meta":
            from accelerate import init_empty_weights

            stack.enter_context(init_empty_weights(include_buffers=False))
        return kmodel(repo_id=REPO_ID, config=config, model=str(empty_checkpoint))


def load_strict(model: Any, state: Any, path: Path, assign: bool) -> None:
    """Kokoro's layout {submodule: state_dict}, loaded strictly; any mismatch is one line naming it.

    kokoro's own loader retries with strict=False and logs only at debug level, so a wrong
    checkpoint would load half-random with no error: this never falls back.
    """
    if not isinstance(state, dict):
        raise StrategyError(f"{path} is not a Kokoro checkpoint (expected a dict of submodule state dicts)")
    missing = [name for name in SUBMODULES if name not in state]
    unexpected = sorted(set(state) - set(SUBMODULES))
    if missing or unexpected:
        raise StrategyError(f"{path}: submodules missing: {', '.join(missing) or 'none'}; "
                            f"unexpected: {', '.join(unexpected) or 'none'}")
    for name in SUBMODULES:
        tensors = dict(state[name])
        if tensors and all(key.startswith("module.") for key in tensors):  # DataParallel checkpoints
            tensors = {key.removeprefix("module."): value for key, value in tensors.items()}
        module = getattr(model, name)
        expected = module.state_dict()
        for key, value in tensors.items():
            if key in expected and tuple(value.shape) != tuple(expected[key].shape):
                raise StrategyError(f"{path}: {name}.{key} has shape {list(value.shape)} in the file, "
                                    f"{list(expected[key].shape)} in the model")
        lost, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if lost or extra:
            raise StrategyError(f"{path}: submodule {name}: missing {', '.join(lost[:5]) or 'none'}"
                                f"{' ...' if len(lost) > 5 else ''}; unexpected {', '.join(extra[:5]) or 'none'}")
        module.load_state_dict(tensors, strict=True, assign=assign)


def phonemes(text: str, vocab: dict[str, int]) -> str:
    """The request's input: the text's characters that are symbols of the vocabulary, at most MAX_PHONEMES."""
    kept = [LETTER_FOR.get(char, char) for char in text.lower()]
    return "".join(char for char in kept if char in vocab)[:MAX_PHONEMES]


SEGMENT_SPLIT = re.compile(r"\n+")  # KPipeline's default split_pattern: a segment per run of lines
WATERFALL = ("!.?\u2026", ":;", ",\u2014")  # KPipeline.waterfall_last: where a too-long segment is cut, best first
BUMPS = (")", "\u201d")  # a closing bracket or quote after the cut goes with the segment before it


def segments(text: str, vocab: dict[str, int]) -> list[str]:
    """The chunks kokoro's `KPipeline` makes of `text`, on this family's symbol input: one segment per run of
    lines, and a segment longer than the model takes (MAX_PHONEMES here, 510 in KPipeline) cut at its last
    sentence end within the limit, else its last `:;`, else its last `,—` (KPipeline's waterfall), else at
    the limit. KPipeline's own code cuts misaki tokens, which this family does not make (no G2P)."""
    out = []
    for line in SEGMENT_SPLIT.split(text.strip()):
        rest = "".join(LETTER_FOR.get(char, char) for char in line.lower() if LETTER_FOR.get(char, char) in vocab)
        while len(rest.strip()) > MAX_PHONEMES:
            window = rest[:MAX_PHONEMES]
            cut = next((max(window.rfind(c) for c in marks) + 1 for marks in WATERFALL
                        if max(window.rfind(c) for c in marks) >= 0), MAX_PHONEMES)
            cut += 1 if cut < MAX_PHONEMES and rest[cut:cut + 1] in BUMPS else 0
            out.append(rest[:cut].strip())
            rest = rest[cut:].lstrip()
        out.append(rest.strip())
    return [segment for segment in out if segment]


@dataclass
class KokoroModel:
    """A KModel ready for inference, its voice pack, and what the loader did (a base.LoadedModel)."""

    model: Any
    vocab: dict[str, int]
    voice: Any  # [510, 1, 256] style vectors; a request of n phonemes uses row n - 1
    info: dict[str, Any] = field(default_factory=dict)
    autocast: Any = None  # a torch dtype: compute in it under torch.autocast (weights stay as loaded)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    def synthesize(self, text: str, seed: int) -> Audio:
        """The whole clip: every KPipeline segment synthesized and joined, as kokoro's users join its generator
        (one pass would drop the text past the model's MAX_PHONEMES)."""
        parts = segments(text, self.vocab)
        if len(parts) <= 1:
            return self.synthesize_segment(text, seed)
        return concatenate(by_sentence(self.synthesize_segment, parts, seed))

    def synthesize_segment(self, text: str, seed: int) -> Audio:
        """kokoro's forward on one segment with a fixed seed (its source module draws noise inside forward)."""
        import torch

        symbols = phonemes(text, self.vocab)
        if len(symbols) < 1:
            raise StrategyError(f"no symbol of the Kokoro vocabulary in the request text {text[:40]!r}")
        style = self.voice[len(symbols) - 1].to(self.dtype)
        torch.manual_seed(seed)
        with torch.inference_mode(), torch.autocast("cpu", dtype=self.autocast, enabled=self.autocast is not None):
            wav = self.model(symbols, style)
        return Audio(np.ascontiguousarray(wav.float().numpy(), dtype=np.float32).reshape(-1), SAMPLE_RATE)

    stream_kind = "sentence"

    def synthesize_stream(self, text: str, seed: int) -> Iterator[Audio]:
        """Segment by segment, as kokoro's `KPipeline` yields them (`segments`), each with its own style row."""
        return by_sentence(self.synthesize_segment, segments(text, self.vocab), seed)

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype


def load_voice(files: ModelFiles) -> Any:
    import torch

    path = files.extra("voice")
    voice = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if tuple(voice.shape)[-1] != 256 or voice.dim() != 3:
        raise StrategyError(f"{path}: a Kokoro voice pack is [510, 1, 256], got {list(voice.shape)}")
    return voice
