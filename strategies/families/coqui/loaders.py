"""Loaders of the Coqui family: how the weights of a Coqui model reach memory.

Each is a `base.PhasedLoader`, so each verifies the sha256 of the files it reads before reading
them and emits load_start, verify_done, construct_done, weights_done; none unpickles with
weights_only=False.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ttsload.strategies import precision
from ttsload.strategies.base import Loader, ModelFiles, PhasedLoader, StrategyError
from ttsload.strategies.families.coqui import model as coqui

if TYPE_CHECKING:
    from torch import nn
    from TTS.tts.models.base_tts import BaseTTS  # Coqui's model class: an nn.Module that keeps its .config


class CoquiLoader(PhasedLoader["BaseTTS"]):
    """The Coqui family on the public phase template: Coqui's config, construction modes and model class."""

    construct_mode: ClassVar[str] = "init"

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        return coqui.import_runtime(threads)

    def construct(self, files: ModelFiles) -> BaseTTS:
        config = coqui.load_coqui_config(files.config)
        return coqui.construct(config, self.construct_mode)  # Coqui models keep their config as .config

    def construct_facts(self) -> dict[str, Any]:
        return {"mode": self.construct_mode}

    def ready(self, model: BaseTTS, files: ModelFiles, info: dict[str, Any]) -> coqui.CoquiModel:
        return coqui.CoquiModel(model=model, config=model.config, info=info)


class EagerLoader(CoquiLoader):
    """Coqui's own path: random init, then `model.load_checkpoint` (torch.load into RAM, copy)."""

    name = "eager"
    summary = "Coqui's load_checkpoint: random init, read whole file, copy into parameters"

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        coqui.require_weights_only()
        model.load_checkpoint(model.config, str(files.checkpoint), eval=True)
        return model


class MmapLoader(CoquiLoader):
    """Construct without initialising, map the checkpoint, and assign its tensors (no copy)."""

    name = "mmap"
    summary = "skip param init + torch.load(mmap=True, weights_only=True) + load_state_dict(assign=True)"
    construct_mode = "skip"
    maps_checkpoint = True

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        state = coqui.read_state(files.checkpoint)
        model.load_state_dict(coqui.coqui_state_fixups(model, state), strict=True, assign=True)
        return coqui.finish_for_inference(model)


class MetaMmapLoader(MmapLoader):
    """As mmap, but parameters are created on the meta device (accelerate.init_empty_weights)."""

    name = "mmap-meta"
    summary = "meta-device construction + torch.load(mmap=True) + assign"
    construct_mode = "meta"


class SafetensorsLoader(CoquiLoader):
    """Construct without initialising and assign tensors from the safetensors file."""

    name = "safetensors"
    summary = "skip param init + safetensors.torch.load_file + load_state_dict(assign=True)"
    construct_mode = "skip"

    def weight_files(self, files: ModelFiles) -> list[Path]:
        if files.safetensors is None:
            raise StrategyError(f"model '{files.name}' has no safetensors file next to {files.checkpoint}")
        return [files.safetensors]

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        from safetensors.torch import load_file

        state = load_file(str(files.safetensors), device="cpu")
        model.load_state_dict(coqui.coqui_state_fixups(model, state), strict=True, assign=True)
        return coqui.finish_for_inference(model)


class Converting:
    """Mixin: a family's own load followed by precision conversions; each reports what it converted."""

    conversions: ClassVar[tuple[Callable[[nn.Module], dict[str, Any]], ...]] = ()
    exact = False

    def convert(self, model: nn.Module) -> dict[str, Any]:
        start = time.monotonic()
        info: dict[str, Any] = {}
        for conversion in self.conversions:
            info.update(conversion(model))
        return {**info, "convert_s": time.monotonic() - start}


class _ConvertingLoader(Converting, EagerLoader):
    """Coqui's load followed by precision conversions."""


class Bf16Loader(_ConvertingLoader):
    """bf16 weights and compute; audio comes back as float32."""

    name = "bf16"
    summary = "eager load, then cast to bfloat16 compute"
    conversions = (precision.to_bf16,)


class Int8DynamicLoader(_ConvertingLoader):
    """int8 dynamic quantization of Linear/LSTM layers (a visible no-op without them)."""

    name = "int8"
    summary = "eager load, then torch.ao quantize_dynamic on Linear/LSTM"
    conversions = (precision.to_int8_dynamic,)


class Int8Bf16Loader(_ConvertingLoader):
    """int8 dynamic where Linear/LSTM exist, bf16 for the rest: the 'quantized' preset."""

    name = "int8-bf16"
    summary = "int8 dynamic on Linear/LSTM + bf16 compute elsewhere"
    conversions = (precision.to_int8_dynamic, precision.to_bf16)


LOADERS: list[type[Loader]] = [
    EagerLoader,
    MmapLoader,
    MetaMmapLoader,
    SafetensorsLoader,
    Bf16Loader,
    Int8DynamicLoader,
    Int8Bf16Loader,
]
