"""Loaders of the XTTS family, named like the Coqui family's so the presets apply unchanged.

`eager` is Coqui's documented path, `Xtts(config)` then `Xtts.load_checkpoint(...)`, which builds
the GPT and the HiFi-GAN decoder a second time (its `init_models`) and reads the whole checkpoint
through a file object. The others construct once from the tokenizer's ids (init skipped, or on the
meta device), assign the checkpoint's tensors and finish the way `load_checkpoint` does, so fp32
audio is bit-identical to `eager`'s. Every file read (config, checkpoint, vocab, speakers) is
verified first; nothing is unpickled with weights_only=False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ttsload.strategies import precision
from ttsload.strategies.base import Loader, ModelFiles, PhasedLoader, StrategyError
from ttsload.strategies.families.coqui.loaders import Converting
from ttsload.strategies.families.coqui.model import read_safetensors_aligned, read_state, require_weights_only
from ttsload.strategies.families.xtts import model as xtts


class XttsLoader(PhasedLoader):
    """XTTS on the public phase template; subclasses choose the construction mode and how weights are read."""

    family = "xtts"
    construct_mode: ClassVar[str] = "skip"

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}  # what this load did, for the weights_done event

    def weight_files(self, files: ModelFiles) -> list[Path]:
        return [files.checkpoint, xtts.side_file(files, "vocab"), xtts.side_file(files, "speakers")]

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        return xtts.import_runtime(threads)

    def construct(self, files: ModelFiles) -> Any:
        self.facts = {"max_new_tokens": xtts.max_new_tokens(files),
                      "stream_chunk_tokens": xtts.stream_chunk_tokens(files)}
        return self.build(files)

    def build(self, files: ModelFiles) -> Any:
        """One construction with the text-token ids already taken from the tokenizer."""
        config = xtts.read_config(files.config)
        tokenizer = xtts.tokenizer(xtts.side_file(files, "vocab"))
        xtts.use_tokenizer(config, tokenizer)
        model = xtts.construct(config, self.construct_mode)
        model.tokenizer = tokenizer
        return model

    def construct_facts(self) -> dict[str, Any]:
        return {"mode": self.construct_mode}

    def read_state(self, files: ModelFiles) -> dict[str, Any]:
        return read_state(files.checkpoint)

    def fill(self, model: Any, files: ModelFiles) -> Any:
        model.load_state_dict(xtts.state_fixups(self.read_state(files)), strict=True, assign=True)
        return xtts.finish_for_inference(model, files)

    def convert_phase(self, model: Any) -> dict[str, Any]:
        """The GPT's cap and native chunk are part of every result (weights_done), next to what a conversion
        reports."""
        return {**self.facts, **super().convert_phase(model)}

    def ready(self, model: Any, files: ModelFiles, info: dict[str, Any]) -> xtts.XttsModel:
        xtts.match_speakers_dtype(model)
        facts = self.facts
        return xtts.XttsModel(model, int(facts["max_new_tokens"]), int(facts["stream_chunk_tokens"]), info)


class XttsEagerLoader(XttsLoader):
    """Coqui's own path: random init, then `load_checkpoint` (which constructs the model again)."""

    name = "eager"
    summary = "Coqui's Xtts(config) + load_checkpoint: the model is built twice, the whole file read and copied"
    construct_mode = "init"

    def build(self, files: ModelFiles) -> Any:
        return xtts.construct(xtts.read_config(files.config), "init")

    def fill(self, model: Any, files: ModelFiles) -> Any:
        require_weights_only()
        model._load_checkpoint = xtts.load_without_rewrite  # Coqui's rewrites a legacy model.pth in place
        model.load_checkpoint(model.config, checkpoint_dir=str(files.checkpoint.parent),
                              checkpoint_path=str(files.checkpoint), vocab_path=str(xtts.side_file(files, "vocab")),
                              speaker_file_path=str(xtts.side_file(files, "speakers")), eval=True, strict=True)
        return model


class XttsMmapLoader(XttsLoader):
    name = "mmap"
    summary = "init skipped (torch + transformers) + torch.load(mmap=True, weights_only=True) + assign"
    maps_checkpoint = True


class XttsMetaMmapLoader(XttsMmapLoader):
    name = "mmap-meta"
    summary = "meta-device construction + torch.load(mmap=True, weights_only=True) + assign"
    construct_mode = "meta"


class XttsSafetensorsLoader(XttsLoader):
    """safetensors gives tensors at the file's offsets (8-byte aligned), where oneDNN/BLAS take other
    code paths and fp32 audio differs from eager's in the last bits: unaligned tensors are copied to
    64-byte-aligned memory (coqui.read_safetensors_aligned), and the bytes copied are reported."""

    name = "safetensors"
    summary = "init skipped + safetensors.torch.load_file (unaligned tensors copied to aligned memory) + assign"

    def weight_files(self, files: ModelFiles) -> list[Path]:
        if files.safetensors is None:
            raise StrategyError(f"model '{files.name}' has no safetensors file next to {files.checkpoint}")
        return [files.safetensors, *super().weight_files(files)[1:]]

    def read_state(self, files: ModelFiles) -> dict[str, Any]:
        state, self.facts["realigned_bytes"] = read_safetensors_aligned(files.safetensors)
        return state


class _XttsConverting(Converting, XttsEagerLoader):
    """Coqui's load, then precision conversions that report what they converted."""


class XttsBf16Loader(_XttsConverting):
    name = "bf16"
    summary = "eager load, then bfloat16 weights and compute (latents and audio returned as float32)"
    conversions = (precision.to_bf16, xtts.bf16_boundaries)


class XttsInt8Loader(_XttsConverting):
    name = "int8"
    summary = "eager load, GPT-2 Conv1D -> Linear, then torch.ao quantize_dynamic on Linear/LSTM"
    conversions = (precision.to_int8_dynamic,)


class XttsInt8Bf16Loader(_XttsConverting):
    name = "int8-bf16"
    summary = "int8 dynamic on Linear (the GPT's Conv1D converted) + bf16 compute elsewhere"
    conversions = (precision.to_int8_dynamic, precision.to_bf16, xtts.bf16_boundaries)


LOADERS: list[type[Loader]] = [XttsEagerLoader, XttsMmapLoader, XttsMetaMmapLoader, XttsSafetensorsLoader,
                               XttsBf16Loader, XttsInt8Loader, XttsInt8Bf16Loader]
