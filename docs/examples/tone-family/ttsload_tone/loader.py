"""How a tone model is loaded: the phase template (sha256 check, phase events) around numpy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttsload.strategies.base import Audio, ModelFiles, PhasedLoader


@dataclass
class ToneModel:
    config: dict[str, Any]
    wave: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    def synthesize(self, text: str, seed: int) -> Audio:
        repeats = self.config["repeats_per_char"] * max(1, len(text))
        return Audio(wav=np.tile(self.wave, repeats), sample_rate=self.config["sample_rate"])


class ToneLoader(PhasedLoader):
    name = "tone-npy"
    summary = "tone: np.load of the waveform (no pickle)"
    family = "tone"

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        return {"numpy": np.__version__}  # no torch: nothing to import or to set threads on

    def set_threads(self, threads: int) -> None:
        pass

    def construct(self, files: ModelFiles) -> ToneModel:
        return ToneModel(config=json.loads(files.config.read_text()))

    def fill(self, model: ToneModel, files: ModelFiles) -> ToneModel:
        model.wave = np.load(files.checkpoint, allow_pickle=False)
        return model

    def describe(self, model: ToneModel) -> dict[str, Any]:  # not a torch module: the default reads parameters()
        size = 0 if model.wave is None else int(model.wave.size)
        return {"params": size, "dtypes": {"float32": size}}

    def ready(self, model: ToneModel, files: ModelFiles, info: dict[str, Any]) -> ToneModel:
        model.info = info
        return model
