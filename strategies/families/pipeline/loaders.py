"""Loaders of the Coqui pipeline family (acoustic model + vocoder): how both checkpoints reach memory.

Each loader treats both parts the same way (one strategy per pipeline; loading each part differently is
out of scope) and reports per part, under `parts` in the weights_done event, the seconds of construction and
of its weights and the file and bytes it read. Names follow the Coqui family's, so the presets work:
`eager` is Coqui's own `load_checkpoint` for both (the vocoder through Coqui's whole GAN, as Synthesizer does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ttsload.strategies import int8_storage, precision
from ttsload.strategies.base import Loader, ModelFiles, PhasedLoader, tensor_facts
from ttsload.strategies.families.coqui import model as coqui
from ttsload.strategies.families.pipeline import model as pipeline

STOP_THRESHOLD = "decoder_stop_threshold"  # manifest key: fixtures with random weights disable the stopnet


class PipelineLoader(PhasedLoader):
    """Both parts on the public phase template; subclasses choose construction, files and how weights land."""

    family = "coqui-pipeline"
    acoustic_mode: ClassVar[str] = "init"
    vocoder_mode: ClassVar[str] = "init"
    whole_gan: ClassVar[bool] = False  # construct Coqui's GAN (generator + discriminators) instead of the generator
    folded: ClassVar[bool] = False  # the vocoder file holds weights with weight norm already removed

    def acoustic_file(self, files: ModelFiles) -> Path:
        return files.checkpoint

    def vocoder_file(self, files: ModelFiles) -> Path:
        return files.extra("vocoder")

    def weight_files(self, files: ModelFiles) -> list[Path]:
        return [self.acoustic_file(files), files.extra("vocoder_config"), self.vocoder_file(files)]

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        return pipeline.import_runtime(threads)

    def construct(self, files: ModelFiles) -> pipeline.Parts:
        return pipeline.construct(files, self.acoustic_mode, self.vocoder_mode, self.whole_gan, self.folded)

    def construct_facts(self) -> dict[str, Any]:
        same = self.acoustic_mode == self.vocoder_mode
        return {"mode": self.acoustic_mode if same else f"{self.acoustic_mode}+{self.vocoder_mode}"}

    def fill(self, parts: pipeline.Parts, files: ModelFiles) -> pipeline.Parts:
        acoustic, vocoder = self.acoustic_file(files), self.vocoder_file(files)
        with parts.step("acoustic", "weights", acoustic):
            self.fill_acoustic(parts, acoustic)
        with parts.step("vocoder", "weights", vocoder):
            self.fill_vocoder(parts, vocoder)
        pipeline.fix_length(parts, files.meta.get(STOP_THRESHOLD))
        return parts

    def fill_acoustic(self, parts: pipeline.Parts, path: Path) -> None:
        import torch

        checkpoint = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        r = pipeline.reduction_factor(checkpoint, parts.acoustic_config)
        pipeline.assign_acoustic(parts, pipeline.state_of(checkpoint, path), r)

    def fill_vocoder(self, parts: pipeline.Parts, path: Path) -> None:
        import torch

        checkpoint = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        gan_state = pipeline.state_of(checkpoint, path)
        pipeline.assign_generator(parts, pipeline.generator_state(gan_state, path), folded=False)

    def describe(self, parts: pipeline.Parts) -> dict[str, Any]:
        return tensor_facts(parts.module())

    def convert(self, parts: pipeline.Parts) -> dict[str, Any]:
        return {"parts": parts.facts, **parts.decoding()}

    def ready(self, parts: pipeline.Parts, files: ModelFiles, info: dict[str, Any]) -> pipeline.PipelineModel:
        rate = int(parts.vocoder_config.audio["sample_rate"])
        return pipeline.PipelineModel(parts.acoustic, parts.vocoder, parts.vocoder_ap, rate, info)


class PipelineEagerLoader(PipelineLoader):
    """Coqui's own path for both parts: random init, then each model's `load_checkpoint(eval=True)`."""

    name = "eager"
    summary = "Coqui's load_checkpoint for both parts (the vocoder as Coqui's whole GAN, discriminators dropped)"
    whole_gan = True

    def fill_acoustic(self, parts: pipeline.Parts, path: Path) -> None:
        coqui.require_weights_only()
        parts.acoustic.load_checkpoint(parts.acoustic_config, str(path), eval=True)

    def fill_vocoder(self, parts: pipeline.Parts, path: Path) -> None:
        coqui.require_weights_only()
        parts.vocoder.load_checkpoint(parts.vocoder_config, str(path), eval=True)  # drops model_d, removes weight norm
        parts.vocoder = parts.vocoder.model_g


class PipelineMmapLoader(PipelineLoader):
    """Init skipped in both parts, both files mapped, tensors assigned (the vocoder's discriminators never read)."""

    name = "mmap"
    summary = "skip param init + torch.load(mmap=True, weights_only=True) + assign, for both parts"
    acoustic_mode = vocoder_mode = "skip"
    maps_checkpoint = True


class PipelineMetaMmapLoader(PipelineMmapLoader):
    name = "mmap-meta"
    summary = "meta-device construction of both parts + torch.load(mmap=True) + assign"
    acoustic_mode = vocoder_mode = "meta"


class PipelineSafetensorsLoader(PipelineLoader):
    """Init skipped; both parts assigned from their safetensors copies (the vocoder's holds the generator only)."""

    name = "safetensors"
    summary = "skip param init + safetensors.torch.load_file + assign, for both parts"
    acoustic_mode = vocoder_mode = "skip"

    def acoustic_file(self, files: ModelFiles) -> Path:
        return files.safetensors if files.safetensors is not None else files.extra("safetensors")

    def vocoder_file(self, files: ModelFiles) -> Path:
        return files.extra("vocoder_safetensors")

    def fill_acoustic(self, parts: pipeline.Parts, path: Path) -> None:
        state = self.read(parts, "acoustic", path)
        pipeline.assign_acoustic(parts, state, int(parts.acoustic_config.r))

    def fill_vocoder(self, parts: pipeline.Parts, path: Path) -> None:
        pipeline.assign_generator(parts, self.read(parts, "vocoder", path), folded=False)

    @staticmethod
    def read(parts: pipeline.Parts, part: str, path: Path) -> dict[str, Any]:
        """The file's tensors, each 64-byte aligned: safetensors packs them at 8-byte offsets, and Tacotron2's
        LSTM kernels round differently on unaligned weights (output not bit-identical); copies are reported."""
        state, parts.facts[part]["realigned_bytes"] = coqui.read_safetensors_aligned(path)
        return state


class PipelineInt8StorageLoader(PipelineMetaMmapLoader):
    """As mmap-meta, but the vocoder's conv weights come from int8 storage, dequantized to float32 at load."""

    name = "int8-storage"
    summary = "mmap-meta, vocoder convs stored int8 per channel (folded weight norm), dequantized at load"
    folded = True
    maps_checkpoint = False  # the vocoder's weights are new float32 tensors
    exact = False

    def vocoder_file(self, files: ModelFiles) -> Path:
        return files.extra("vocoder_int8")

    def fill_vocoder(self, parts: pipeline.Parts, path: Path) -> None:
        import torch

        stored = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
        start = time.monotonic()
        state, fp32_bytes = int8_storage.dequantize(pipeline.state_of(stored, path))
        parts.facts["vocoder"].update(dequant_s=round(time.monotonic() - start, 4), fp32_bytes=fp32_bytes,
                                      saved_bytes=fp32_bytes - path.stat().st_size)
        pipeline.assign_generator(parts, state, folded=True)


def to_bf16(parts: pipeline.Parts) -> dict[str, Any]:
    """bf16 in both parts except Tacotron2's decoder; the fraction is over the whole pipeline's parameters.

    Coqui's decoder builds its go frame and RNN states as float32 zeros at every request, so it stays float32
    (its input and outputs cast around it); the bf16 fraction says how much that leaves in bf16.
    """
    decoder = parts.acoustic.decoder
    for module in decoder.modules():
        module._ttsload_fp32_island = True  # precision.to_bf16 leaves these modules' tensors alone
    inner = decoder.inference

    def inference(inputs: Any, *args: Any, **kwargs: Any) -> Any:
        outputs = inner(inputs.float(), *args, **kwargs)
        return tuple(o.to(inputs.dtype) if o.is_floating_point() else o for o in outputs)

    decoder.inference = inference
    counts = [sum(p.numel() for p in part.parameters()) for part in (parts.acoustic, parts.vocoder)]
    fractions = [precision.to_bf16(part)["bf16_fraction"] for part in (parts.acoustic, parts.vocoder)]
    return {"bf16_fraction": sum(f * n for f, n in zip(fractions, counts, strict=True)) / max(sum(counts), 1)}


def to_int8_dynamic(parts: pipeline.Parts) -> dict[str, Any]:
    return precision.to_int8_dynamic(parts.module())


class _ConvertingLoader(PipelineEagerLoader):
    """Coqui's load of both parts followed by precision conversions; each reports what it converted."""

    conversions: ClassVar[tuple[Callable[[pipeline.Parts], dict[str, Any]], ...]] = ()
    exact = False

    def convert(self, parts: pipeline.Parts) -> dict[str, Any]:
        start = time.monotonic()
        info = super().convert(parts)
        for conversion in self.conversions:
            info.update(conversion(parts))
        return {**info, "convert_s": time.monotonic() - start}


class PipelineBf16Loader(_ConvertingLoader):
    name = "bf16"
    summary = "eager load of both parts, then bfloat16 compute"
    conversions = (to_bf16,)


class PipelineInt8Loader(_ConvertingLoader):
    name = "int8"
    summary = "eager load of both parts, then quantize_dynamic on Linear/LSTM/LSTMCell (the vocoder has none)"
    conversions = (to_int8_dynamic,)


class PipelineInt8Bf16Loader(_ConvertingLoader):
    name = "int8-bf16"
    summary = "int8 dynamic on Linear/LSTM/LSTMCell + bf16 compute elsewhere, both parts"
    conversions = (to_int8_dynamic, to_bf16)


LOADERS: list[type[Loader]] = [
    PipelineEagerLoader,
    PipelineMmapLoader,
    PipelineMetaMmapLoader,
    PipelineSafetensorsLoader,
    PipelineBf16Loader,
    PipelineInt8Loader,
    PipelineInt8Bf16Loader,
    PipelineInt8StorageLoader,
]
