"""The `artifact` loader of each Coqui family: the inference-only tree on the meta device, tensors assigned
from the mapped, aligned `inference.safetensors` (strategies/artifact.py), strictly.

Construction is the family's own (Coqui's classes), with init skipped and weight norm never registered
(`artifact.without_parametrizations`), then the training-only modules the artifact's manifest names are
dropped; `load_state_dict(strict=True, assign=True)` puts the file's mapped tensors in place: every key
present, none unexpected, none copied where aligned (`realigned_bytes`). Init is skipped on the CPU
rather than on the meta device: accelerate's meta construction creates each parameter and then moves
it, which made VITS's construction slower, not faster (docs/strategies.md, "Inference artifact").
Each class also says how export takes the inference state out of a model its family's `mmap` loaded
(`inference_state`), so export and load agree on the tree by construction.

Not for Kokoro (its KModel is built by kokoro's own code; folding would work the same way but no loader
here constructs it on the meta device) nor ONNX (an ONNX graph already is an inference artifact: ORT
folds the weight-norm arithmetic into constants when it optimises the graph).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ttsload.strategies import artifact
from ttsload.strategies.base import Loader, ModelFiles
from ttsload.strategies.families.coqui import model as coqui
from ttsload.strategies.families.coqui.loaders import CoquiLoader
from ttsload.strategies.families.pipeline import model as pipeline
from ttsload.strategies.families.pipeline.loaders import PipelineLoader
from ttsload.strategies.families.xtts import model as xtts
from ttsload.strategies.families.xtts.loaders import XttsLoader

if TYPE_CHECKING:
    from torch import nn
    from TTS.tts.models.base_tts import BaseTTS

ModuleT = TypeVar("ModuleT", bound="nn.Module")  # prepare() hands back the module it was given

SUMMARY = ("inference artifact (`ttsload models export`): init skipped, weight norm folded in the file and never "
           "registered, training-only modules dropped, aligned safetensors mapped and assigned strictly")


class ArtifactFacts:
    """Mixin: what the artifact load did (folded, dropped, realigned bytes), reported in weights_done."""

    name = "artifact"
    summary = SUMMARY
    maps_checkpoint = True
    facts: dict[str, Any]

    def prepare(self, module: ModuleT, names: list[str]) -> ModuleT:
        """The inference-only tree: the training-only modules the manifest names dropped (a parametrization
        left by other means makes the strict load fail, naming its keys)."""
        self.facts["dropped"] = [*self.facts.get("dropped", []), *artifact.drop_training_only(module, names)]
        return module

    def read_artifact(self, files: ModelFiles) -> dict[str, Any]:
        state, self.facts["realigned_bytes"] = artifact.read(files.extras[artifact.ROLE])
        return state


class CoquiArtifactLoader(ArtifactFacts, CoquiLoader):
    construct_mode: ClassVar[str] = "skip"

    def weight_files(self, files: ModelFiles) -> list[Path]:
        artifact.section(files)
        return [files.extras[artifact.ROLE]]

    def construct(self, files: ModelFiles) -> BaseTTS:
        self.facts = {}
        with artifact.without_parametrizations():
            model = super().construct(files)
        return self.prepare(model, artifact.section(files).get("dropped", []))

    def fill(self, model: BaseTTS, files: ModelFiles) -> BaseTTS:
        artifact.assign_strict(model, self.read_artifact(files))
        return coqui.finish_for_inference(model)

    def convert(self, model: BaseTTS) -> dict[str, Any]:
        return dict(self.facts)

    @staticmethod
    def inference_state(loaded: coqui.CoquiModel) -> tuple[dict[str, Any], dict[str, Any]]:
        module = loaded.model
        folded = artifact.fold_parametrizations(module)
        dropped = artifact.drop_training_only(module)
        return module.state_dict(), {"folded": folded, "dropped": dropped}


class PipelineArtifactLoader(ArtifactFacts, PipelineLoader):
    """Both parts in one file (keys `acoustic.*`, `vocoder.*`); the vocoder is the generator, folded."""

    acoustic_mode = vocoder_mode = "skip"
    folded = True

    def weight_files(self, files: ModelFiles) -> list[Path]:
        artifact.section(files)
        return [files.extra("vocoder_config"), files.extras[artifact.ROLE]]

    def construct(self, files: ModelFiles) -> pipeline.Parts:
        self.facts = {}
        spec = artifact.section(files)
        with artifact.without_parametrizations():
            parts = super().construct(files)
        self.prepare(parts.acoustic, spec.get("dropped", []))
        return parts

    def fill(self, parts: pipeline.Parts, files: ModelFiles) -> pipeline.Parts:
        path = files.extras[artifact.ROLE]
        with parts.step("acoustic", "weights", path):
            state = self.read_artifact(files)
            pipeline.assign_acoustic(parts, _part(state, "acoustic."), int(artifact.section(files)["r"]))
        with parts.step("vocoder", "weights", path):
            pipeline.assign_generator(parts, _part(state, "vocoder."), folded=True)
        pipeline.fix_length(parts, files.meta.get("decoder_stop_threshold"))
        return parts

    def convert(self, parts: pipeline.Parts) -> dict[str, Any]:
        return {**super().convert(parts), **self.facts}

    @staticmethod
    def inference_state(loaded: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        folded = artifact.fold_parametrizations(loaded.acoustic) + artifact.fold_parametrizations(loaded.vocoder)
        dropped = artifact.drop_training_only(loaded.acoustic)
        state = {**{f"acoustic.{k}": v for k, v in loaded.acoustic.state_dict().items()},
                 **{f"vocoder.{k}": v for k, v in loaded.vocoder.state_dict().items()}}
        return state, {"folded": folded, "dropped": dropped, "r": int(loaded.acoustic.decoder.r)}


def _part(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}


class XttsArtifactLoader(ArtifactFacts, XttsLoader):
    construct_mode = "skip"

    def weight_files(self, files: ModelFiles) -> list[Path]:
        artifact.section(files)
        return [files.extras[artifact.ROLE], *super().weight_files(files)[1:]]

    def construct(self, files: ModelFiles) -> Any:
        with artifact.without_parametrizations():
            model = super().construct(files)  # sets self.facts (the GPT's cap)
        return self.prepare(model, artifact.section(files).get("dropped", []))

    def read_state(self, files: ModelFiles) -> dict[str, Any]:
        return self.read_artifact(files)

    @staticmethod
    def inference_state(loaded: coqui.CoquiModel) -> tuple[dict[str, Any], dict[str, Any]]:
        module = loaded.model
        folded = artifact.fold_parametrizations(module)
        dropped = artifact.drop_training_only(module)
        return xtts.state_fixups(module.state_dict()), {"folded": folded, "dropped": dropped}


LOADERS: list[type[Loader]] = [CoquiArtifactLoader, PipelineArtifactLoader, XttsArtifactLoader]
