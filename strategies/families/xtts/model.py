"""The XTTS family through Coqui's own `Xtts` class (a GPT-2 that turns text into audio codes, and a
HiFi-GAN decoder that turns its latents into 24 kHz audio): imports, construction modes, what
`Xtts.load_checkpoint` does around `load_state_dict`, request input and synthesis.

Loaders that bypass `load_checkpoint` repeat everything it does (tokenizer and the text-token ids
derived from it, state-dict key fixups, the GPT's inference wrapper, eval of the submodules), so
their audio is bit-identical to Coqui's path. Random weights never sample the stop token, so the
GPT loop is bounded: every piece of a request (XTTS's own text split) generates exactly
`max_new_tokens` audio codes (HF generate's min = max), a fixed workload that every result records.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttsload.strategies import stream_choice
from ttsload.strategies.audio import by_sentence, concatenate
from ttsload.strategies.base import Audio, ModelFiles, StrategyError
from ttsload.strategies.families.coqui import model as coqui

# Imported before any load is timed. torch._dynamo: a weight_norm on the meta device imports it on
# first use (1.7-3.6 s measured); transformers usually has, but construct must measure construction.
RUNTIME_MODULES = ("torch", "TTS.config", "TTS.tts.models.xtts", "TTS.tts.layers.xtts.tokenizer",
                   "TTS.tts.layers.xtts.xtts_manager", "trainer.io", "torch._dynamo", "accelerate",
                   "transformers.initialization")
LANGUAGE = "en"
MAX_TEXT_CHARS = 250  # XTTS's own per-piece limit for English (VoiceBpeTokenizer.char_limits["en"])
DEFAULT_MAX_NEW_TOKENS = 64  # ~2.97 s of audio; a model folder without a manifest gets this cap
STREAM_CHUNK_TOKENS = 20  # codes per native chunk: inference_stream's default, which Coqui's streaming server uses
# Files besides config and checkpoint, by role: (file name, what it is for) for one-line errors.
SIDE_FILES = {
    "vocab": ("vocab.json", "XTTS's BPE text tokenizer, which encodes every request and sets the GPT's text-token ids"),
    "speakers": ("speakers_xtts.pth", "the speaker latents (gpt_cond_latent, speaker_embedding) requests are "
                 "spoken with; without it XTTS would need a reference recording"),
}
TRAINER_ONLY = ("torch_mel_spectrogram_style_encoder", "torch_mel_spectrogram_dvae", "dvae")
LEGACY_CLASSES = ("XttsConfig", "XttsAudioConfig", "XttsArgs", "BaseDatasetConfig")  # pickled by XTTS releases
INFERENCE_ALIASES = ("gpt.gpt_inference.", "gpt.gpt.wte.")  # what Xtts.eval() adds to state_dict()


def import_runtime(threads: int | None) -> dict[str, Any]:
    """Coqui's runtime with XTTS's modules; transformers' config warnings silenced (random-weight GPT2Config)."""
    facts = coqui.import_runtime(threads, RUNTIME_MODULES)
    from transformers.utils import logging

    logging.set_verbosity_error()
    return facts


def missing_side_file(folder: Path) -> str | None:
    """A one-line message naming the first side file missing from an XTTS folder, and what it is for."""
    for name, purpose in SIDE_FILES.values():
        if not (folder / name).is_file():
            return f"the XTTS model in {folder} has no {name}: {purpose}"
    return None


def side_file(files: ModelFiles, role: str) -> Path:
    """The vocab or speakers file of a model; missing is a one-line error saying what it is for."""
    path = files.extras.get(role)
    if path is None or not path.is_file():
        name, purpose = SIDE_FILES[role]
        raise StrategyError(f"model '{files.name}' has no {name} next to {files.checkpoint}: {purpose}")
    return path


def read_config(path: Path) -> Any:
    config = coqui.load_coqui_config(path)
    if getattr(config, "model", None) != "xtts":
        raise StrategyError(f"{path} is not an XTTS config (model is {getattr(config, 'model', None)!r})")
    return config


def tokenizer(vocab: Path) -> Any:
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    return VoiceBpeTokenizer(vocab_file=str(vocab))


def use_tokenizer(config: Any, tok: Any) -> None:
    """The text-token ids `Xtts.init_models` derives from the tokenizer, set before the one construction."""
    config.model_args.gpt_number_text_tokens = tok.get_number_tokens()
    config.model_args.gpt_start_text_token = tok.tokenizer.token_to_id("[START]")
    config.model_args.gpt_stop_text_token = tok.tokenizer.token_to_id("[STOP]")


@contextlib.contextmanager
def construction(mode: str) -> Iterator[None]:
    """coqui.construction, plus transformers' no_init_weights for skip and meta.

    transformers 5 keeps its own references to torch.nn.init (GPT-2's `post_init` uses them), so
    patching torch.nn.init alone leaves the GPT initialised.
    """
    if mode == "init":
        yield
        return
    from transformers.initialization import no_init_weights

    with no_init_weights(), coqui.construction(mode):
        yield


def construct(config: Any, mode: str) -> Any:
    from TTS.tts.models.xtts import Xtts

    with construction(mode):
        return Xtts(config)


def state_fixups(state: dict[str, Any]) -> dict[str, Any]:
    """What `Xtts.get_compatible_checkpoint_state_dict` does (strip trainer's `xtts.` prefix, drop the
    DVAE and mel-spectrogram keys), plus dropping the inference wrapper's aliases of a checkpoint saved
    after eval() (load_checkpoint loads those through its retry; they are recreated below)."""
    fixed = {}
    for key, value in state.items():
        key = key.replace("xtts.", "") if key.startswith("xtts.") else key
        if key.split(".")[0] in TRAINER_ONLY or key.startswith(INFERENCE_ALIASES):
            continue
        fixed[key] = value
    return fixed


def finish_for_inference(model: Any, files: ModelFiles) -> Any:
    """What `load_checkpoint(eval=True)` does after loading weights: speakers, the GPT's inference
    wrapper (shares the GPT's modules, copies nothing), eval of both submodules (as Coqui does, the
    top-level training flag is left alone)."""
    from TTS.tts.layers.xtts.xtts_manager import SpeakerManager

    model.speaker_manager = SpeakerManager(side_file(files, "speakers"))
    model.hifigan_decoder.eval()
    model.gpt.init_gpt_for_inference(kv_cache=model.args.kv_cache, use_deepspeed=False)
    model.gpt.eval()
    return model


def load_without_rewrite(model_path: Path) -> dict[str, Any]:
    """`Xtts._load_checkpoint` without its legacy branch, which unpickles an XttsConfig and writes the
    converted checkpoint back over the user's model.pth (the next run would then fail its sha256).
    ttsload never writes into a model folder: a legacy checkpoint is refused in one line."""
    import pickle

    import torch

    from ttsload.strategies import load_errors

    try:
        checkpoint = torch.load(model_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not any(name in str(exc) for name in LEGACY_CLASSES):
            raise StrategyError(load_errors.describe(Path(model_path), exc)) from exc
        raise StrategyError(f"{model_path} is a legacy XTTS checkpoint (its pickle holds an XttsConfig object, not "
                            "only tensors): Coqui would rewrite it in place, so ttsload refuses it; convert it "
                            "once outside ttsload and record the new file") from exc
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise StrategyError(f"{model_path} holds no state dict (expected a 'model' entry)")
    return state


def max_new_tokens(files: ModelFiles) -> int:
    """The GPT's cap per request: the fixture's (manifest), else DEFAULT_MAX_NEW_TOKENS."""
    return int(files.meta.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)


def stream_chunk_tokens(files: ModelFiles) -> int:
    """Codes per native chunk: the fixture's (manifest; xtts-small's cap of 8 is under the default), else
    STREAM_CHUNK_TOKENS."""
    return int(files.meta.get("stream_chunk_tokens") or STREAM_CHUNK_TOKENS)


def request_text(text: str) -> str:
    return text[:MAX_TEXT_CHARS]


def match_speakers_dtype(model: Any) -> None:
    """Speaker latents in the dtype of the model's weights (bf16 loaders), key order kept (Coqui
    unpacks them with `.values()`)."""
    import torch

    dtype = next(p.dtype for p in model.hifigan_decoder.parameters() if p.is_floating_point())
    if dtype == torch.float32:
        return
    for name, latents in model.speaker_manager.speakers.items():
        model.speaker_manager.speakers[name] = {key: value.to(dtype) for key, value in latents.items()}


def bf16_boundaries(model: Any) -> dict[str, Any]:
    """After a bf16 cast, put float32 back where Coqui's code needs it, with forward hooks only.

    Xtts.inference calls `.numpy()` on the GPT's latents and the decoder's audio (no bf16 in numpy),
    so both come back as float32 and the decoder casts its inputs to its own dtype; XTTS's GPT-2
    adds float32 zeros as position embeddings, so each transformer block casts its input too.
    """
    import torch

    def own_dtype(module: Any) -> Any:
        return next(p.dtype for p in module.parameters() if p.is_floating_point())

    def cast(value: Any, dtype: Any) -> Any:
        return value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point() else value

    def inputs_to_own_dtype(module: Any, args: Any, kwargs: Any) -> Any:
        dtype = own_dtype(module)
        return tuple(cast(a, dtype) for a in args), {k: cast(v, dtype) for k, v in kwargs.items()}

    def output_to_float32(module: Any, args: Any, kwargs: Any, output: Any) -> Any:
        return cast(output, torch.float32)

    for module in (model.hifigan_decoder, *model.gpt.gpt.h):
        module.register_forward_pre_hook(inputs_to_own_dtype, with_kwargs=True)
    for module in (model.gpt, model.hifigan_decoder):
        module.register_forward_hook(output_to_float32, with_kwargs=True)
    return {}


@dataclass
class XttsModel:
    """An Xtts ready for inference, the speaker it speaks with, its cap, and what the loader did.

    A request's text is cut into pieces by XTTS's own splitter (sentences merged up to its 250-character
    limit, as `inference(enable_text_splitting=True)` and `inference_stream` do), and every piece gets
    exactly `max_new_tokens` codes. The whole clip is the pieces synthesized one by one and joined, so a
    "sentence" stream concatenates to it bit for bit; the "native" stream is Coqui's `inference_stream`,
    which decodes every `stream_chunk_tokens` codes and cross-fades the joins (same length, other samples).
    """

    model: Any
    max_new_tokens: int
    stream_chunk_tokens: int
    info: dict[str, Any] = field(default_factory=dict)
    stream_kinds: tuple[str, ...] = ("native", "sentence")

    @property
    def sample_rate(self) -> int:
        return int(self.model.args.output_sample_rate)

    @property
    def speaker(self) -> str:
        return next(iter(self.model.speaker_manager.speakers))

    @property
    def stream_kind(self) -> str:
        """Native, unless the `stream=sentence` option asks for XTTS's pieces one by one."""
        return "sentence" if stream_choice.chosen() == "sentence" else "native"

    def pieces(self, text: str) -> list[str]:
        from TTS.tts.layers.xtts.tokenizer import split_sentence

        limit = self.model.tokenizer.char_limits[LANGUAGE]
        return [piece for piece in split_sentence(text, LANGUAGE, limit) if piece.strip()]

    def synthesize(self, text: str, seed: int) -> Audio:
        return concatenate(by_sentence(self.synthesize_piece, self.pieces(text), seed))

    def synthesize_piece(self, text: str, seed: int) -> Audio:
        """Coqui's `Xtts.synthesize` with a stored speaker, a fixed seed and exactly max_new_tokens codes."""
        import torch

        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.synthesize(request_text(text), speaker=self.speaker, language=LANGUAGE,
                                        **self._cap())
        wav = np.asarray(out["wav"], dtype=np.float32).reshape(-1)
        return Audio(np.ascontiguousarray(wav), self.sample_rate)

    def synthesize_stream(self, text: str, seed: int) -> Iterator[Audio]:
        if self.stream_kind == "sentence":
            return by_sentence(self.synthesize_piece, self.pieces(text), seed)
        return self._native(text, seed)

    def _native(self, text: str, seed: int) -> Iterator[Audio]:
        """`Xtts.inference_stream` piece by piece, each seeded as synthesize_piece is. Every step runs in
        inference mode on its own: a server may pull the chunks from different threads."""
        import torch

        latent, embedding = self.model.speaker_manager.speakers[self.speaker].values()
        config = self.model.config
        sampling = {key: getattr(config, key) for key in ("temperature", "length_penalty", "repetition_penalty",
                                                           "top_k", "top_p")}
        for piece in self.pieces(text):
            torch.manual_seed(seed)
            chunks = self.model.inference_stream(request_text(piece), LANGUAGE, latent, embedding,
                                                 stream_chunk_size=self.stream_chunk_tokens, **sampling, **self._cap())
            while True:
                with torch.inference_mode():
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                wav = chunk.detach().to(torch.float32).reshape(-1).numpy()
                yield Audio(np.ascontiguousarray(wav), self.sample_rate)

    def _cap(self) -> dict[str, int]:
        return {"max_new_tokens": self.max_new_tokens, "min_new_tokens": self.max_new_tokens}
