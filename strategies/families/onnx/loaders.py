"""Loaders of the ONNX Runtime family: how a Piper voice becomes an InferenceSession.

`ort` is what PiperVoice.load does (default SessionOptions); `ort-lean` turns off the CPU arena and
the memory-pattern cache (the growth a long-running server sees plateaus without them) and pins
threads; `ort-int8` quantizes the weights at load (ConvInteger: smaller, but slower on CPU: a
memory/size variant); `ort-optimized` loads the graph ORT optimised once at fixture build, so load
time excludes graph optimisation. The family's aliases (strategies/families/__init__.py) make the presets run:
eager -> ort, mmap -> ort-lean, int8-bf16/int8 -> ort-int8.

Every loader here is torch-free, including set_threads and prepare_fork.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from ttsload.strategies.base import ModelFiles, PhasedLoader
from ttsload.strategies.families.onnx import model as onnx


class OrtLoader(PhasedLoader):
    """A Piper voice on the phase template: construct reads the config and the graph's facts (no
    weights), fill creates the session."""

    name = "ort"
    summary = "onnxruntime InferenceSession with default SessionOptions (what PiperVoice.load does)"
    family = "onnx"
    variant: ClassVar[str] = "default"  # onnx.session_options

    def __init__(self) -> None:
        self.threads: int | None = None

    def model_file(self, files: ModelFiles) -> Path:
        return files.checkpoint

    def weight_files(self, files: ModelFiles) -> list[Path]:
        return [self.model_file(files)]

    def session_threads(self) -> int:
        """Intra-op threads of the sessions this loader creates (0: ORT's default, one per core)."""
        return (self.threads or 1) if self.variant == "lean" else (self.threads or 0)

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        self.threads = threads
        return onnx.import_runtime(self.session_threads())

    def set_threads(self, threads: int) -> None:
        """Threads belong to sessions: later sessions get this count. A session inherited across fork
        runs on the calling thread only, whatever it was created with (FINDINGS B5)."""
        self.threads = threads

    def prepare_fork(self) -> None:
        """Nothing to do: ORT has no process-wide thread team that a fork could strand (unlike libgomp)."""

    def construct(self, files: ModelFiles) -> onnx.OnnxGraph:
        config = onnx.read_config(files.config)
        path = self.model_file(files)
        facts = onnx.graph_facts(path)
        onnx.check_model(config, facts, path)
        return onnx.OnnxGraph(config, path, facts)

    def construct_facts(self) -> dict[str, Any]:
        return {"mode": self.variant}

    def fill(self, model: onnx.OnnxGraph, files: ModelFiles) -> onnx.OnnxGraph:
        model.session = onnx.create_session(model.path, onnx.session_options(self.variant, self.threads))
        return model

    def describe(self, model: onnx.OnnxGraph) -> dict[str, Any]:
        """Initializer elements in all (of the graph before any conversion) and per dtype (as loaded)."""
        return {"params": (model.source or model.facts).params, "dtypes": model.facts.dtypes}

    def convert(self, model: onnx.OnnxGraph) -> dict[str, Any]:
        return model.conversion

    def ready(self, model: onnx.OnnxGraph, files: ModelFiles, info: dict[str, Any]) -> onnx.OnnxModel:
        info.update(noise_scales=list(onnx.SCALES), sample_rate=model.config.sample_rate,
                    ort_threads=self.session_threads(), session=self.variant)
        return onnx.OnnxModel(model.session, model.config, info)


class OrtLeanLoader(OrtLoader):
    name = "ort-lean"
    summary = "ort without CPU arena and memory pattern, intra-op threads as given (1 by default), inter-op 1"
    variant = "lean"


class OrtInt8Loader(OrtLoader):
    name = "ort-int8"
    summary = "onnxruntime.quantization.quantize_dynamic at load (Conv -> ConvInteger), then ort"
    exact = False

    def fill(self, model: onnx.OnnxGraph, files: ModelFiles) -> onnx.OnnxGraph:
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="ttsload-ort-int8-") as folder:
            quantized, folded = onnx.quantize_int8(model.path, Path(folder))
            facts = onnx.graph_facts(quantized)
            quantize_s = time.monotonic() - start
            model.session = onnx.create_session(quantized, onnx.session_options(self.variant, self.threads))
        model.source, model.facts = model.facts, facts
        model.conversion = {"int8_fraction": onnx.int8_fraction(model.source, facts), "identities_folded": folded,
                            "convert_s": quantize_s}
        return model


class OrtOptimizedLoader(OrtLoader):
    name = "ort-optimized"
    summary = "the graph ORT optimised at fixture build (EXTENDED), loaded with optimisations off"
    variant = "preoptimized"

    def model_file(self, files: ModelFiles) -> Path:
        return files.extra("optimized")


LOADERS = [OrtLoader, OrtLeanLoader, OrtInt8Loader, OrtOptimizedLoader]
