"""The Coqui two-model pipeline family: an acoustic model (Tacotron2) and a GAN vocoder (HiFi-GAN), each with its
own Coqui config and checkpoint, loaded and served as one model through Coqui's own classes.

Layout of a folder (Coqui's CLI takes the same four files as `--model_path/--config_path` and
`--vocoder_path/--vocoder_config_path`): `config.json` + `model.pth` (acoustic model), `vocoder_config.json` +
`vocoder.pth` (vocoder, the whole GAN as Coqui's trainer writes it: generator and discriminators, because
Coqui's `GAN.load_checkpoint` loads strictly); optional second copies read by some loaders:
`model.safetensors`, `vocoder.safetensors` (generator only) and `vocoder_int8.pth` (generator with weight norm
folded and conv weights stored int8, see int8_storage.py).

A request follows Coqui's `Synthesizer`: text → ids (the acoustic model's tokenizer) → mel → denormalised with the
acoustic model's audio settings, renormalised with the vocoder's → vocoder → float32 audio, under a fixed seed.
Synthesizer's silence trim is left out so every request has a fixed length. Random weights never stop decoding:
the decoder runs `max_decoder_steps` (from config.json) steps, with the stopnet disabled where the model's
manifest says `decoder_stop_threshold` (sigmoid never exceeds 1, so 2.0 never stops).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttsload.strategies.audio import by_sentence
from ttsload.strategies.base import Audio, ModelFiles, StrategyError
from ttsload.strategies.families.coqui import model as coqui

ACOUSTIC_CONFIG, ACOUSTIC = "config.json", "model.pth"
VOCODER_CONFIG, VOCODER = "vocoder_config.json", "vocoder.pth"
ROLES = {"config": ACOUSTIC_CONFIG, "checkpoint": ACOUSTIC, "vocoder_config": VOCODER_CONFIG, "vocoder": VOCODER}
OPTIONAL_ROLES = {"safetensors": "model.safetensors", "vocoder_safetensors": "vocoder.safetensors",
                  "vocoder_int8": "vocoder_int8.pth"}
# Settings the vocoder must share with the acoustic model: Coqui's Synthesizer would silently interpolate the
# mel for another sample rate, and other mel settings give wrong audio with no error at all.
MEL_SETTINGS = ("sample_rate", "num_mels", "hop_length", "win_length", "fft_size", "mel_fmin", "mel_fmax")
GENERATOR_PREFIX = "model_g."  # the generator's keys inside Coqui's GAN state dict

# The VITS list's Coqui modules, the two models' classes, and torch._dynamo: weight_norm and init ops on
# meta tensors import it on first use (1.7-3.6 s measured), which would otherwise land in `construct`.
_RUNTIME_MODULES = (
    "torch", "TTS.config", "TTS.tts.models", "TTS.tts.models.tacotron2", "TTS.vocoder.models",
    "TTS.vocoder.models.gan", "TTS.vocoder.models.hifigan_generator", "TTS.vocoder.models.hifigan_discriminator",
    "TTS.utils.audio", "trainer.io", "librosa.filters", "scipy.signal", "torch._dynamo",
)


def import_runtime(threads: int | None) -> dict[str, Any]:
    return coqui.import_runtime(threads, _RUNTIME_MODULES)


@dataclass
class Parts:
    """Both models while they load, and what each part's phases cost (`facts`: part -> seconds, file, bytes)."""

    acoustic_config: Any
    vocoder_config: Any
    acoustic: Any = None
    vocoder: Any = None  # Coqui's GAN while the eager loader fills it, the generator afterwards
    vocoder_ap: Any = None
    facts: dict[str, dict[str, Any]] = field(default_factory=lambda: {"acoustic": {}, "vocoder": {}})

    def module(self) -> Any:
        """Both models as one torch module (for parameter counts and whole-pipeline precision conversions)."""
        from torch import nn

        return nn.ModuleDict({"acoustic": self.acoustic, "vocoder": self.vocoder})

    @contextlib.contextmanager
    def step(self, part: str, phase: str, path: Path) -> Iterator[None]:
        """Time one part's phase and name that part's file in any error."""
        start = time.monotonic()
        try:
            yield
        except StrategyError:
            raise
        except Exception as exc:
            verb = "construct the model of" if phase == "construct" else "load weights from"
            raise StrategyError(f"cannot {verb} {path} ({part}): {type(exc).__name__}: {exc}") from exc
        self.facts[part][f"{phase}_s"] = round(time.monotonic() - start, 4)
        if phase != "construct":
            self.facts[part].update(file=path.name, bytes=path.stat().st_size)

    def decoding(self) -> dict[str, Any]:
        """The decoder's fixed workload, for the results."""
        decoder = self.acoustic.decoder
        return {"max_decoder_steps": int(decoder.max_decoder_steps), "stop_threshold": float(decoder.stop_threshold),
                "r": int(decoder.r), "max_mel_frames": int(decoder.max_decoder_steps) * int(decoder.r)}


def check_match(acoustic_config: Any, vocoder_config: Any, acoustic_path: Path, vocoder_path: Path) -> None:
    """One line naming every audio setting the two configs disagree on, with both values and both files."""
    differ = [f"{name} {acoustic_config.audio.get(name)} (acoustic) vs {vocoder_config.audio.get(name)} (vocoder)"
              for name in MEL_SETTINGS if acoustic_config.audio.get(name) != vocoder_config.audio.get(name)]
    if differ:
        raise StrategyError(f"the vocoder does not match the acoustic model: {'; '.join(differ)}; "
                            f"acoustic {acoustic_path}, vocoder {vocoder_path}")


def construct(files: ModelFiles, acoustic_mode: str, vocoder_mode: str, whole_gan: bool, fold: bool) -> Parts:
    """Read and cross-check both configs, then build both models with coqui.py's construction modes.

    `whole_gan`: Coqui's GAN (generator and discriminators, as Synthesizer builds it), else the generator
    alone. `fold`: remove weight norm right after construction (for weights stored folded).
    """
    from TTS.utils.audio import AudioProcessor
    from TTS.vocoder.models import setup_generator, setup_model

    vocoder_path = files.extra("vocoder_config")
    parts = Parts(coqui.load_coqui_config(files.config), coqui.load_coqui_config(vocoder_path))
    check_match(parts.acoustic_config, parts.vocoder_config, files.config, vocoder_path)
    with parts.step("acoustic", "construct", files.config):
        parts.acoustic = coqui.construct(parts.acoustic_config, acoustic_mode)
    with parts.step("vocoder", "construct", vocoder_path):
        setup = setup_model if whole_gan else setup_generator
        parts.vocoder = coqui.construct(parts.vocoder_config, vocoder_mode, setup)
        if fold:
            parts.vocoder.remove_weight_norm()
        parts.vocoder_ap = AudioProcessor(parts.vocoder_config.audio)  # what Synthesizer renormalises with
    return parts


def reduction_factor(checkpoint: Any, config: Any) -> int:
    """Frames per decoder step, where Coqui's Tacotron `load_checkpoint` takes it from (checkpoint first)."""
    if isinstance(checkpoint, dict) and "r" in checkpoint:
        return int(checkpoint["r"])
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("config"), dict) and "r" in checkpoint["config"]:
        return int(checkpoint["config"]["r"])
    return int(config.r)


def state_of(checkpoint: Any, path: Path) -> dict[str, Any]:
    """The state dict of a Coqui checkpoint ({'model': state, ...})."""
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise StrategyError(f"{path} holds no state dict (expected a 'model' entry)")
    return state


def generator_state(gan_state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The generator's tensors of a Coqui GAN state dict; the discriminators' are never touched."""
    state = {key.removeprefix(GENERATOR_PREFIX): value for key, value in gan_state.items()
             if key.startswith(GENERATOR_PREFIX)}
    if not state:
        raise StrategyError(f"{path} holds no vocoder generator (no '{GENERATOR_PREFIX}*' tensors)")
    return state


def assign_acoustic(parts: Parts, state: dict[str, Any], r: int) -> None:
    """What Tacotron's `load_checkpoint(eval=True)` does, with the tensors assigned instead of copied."""
    parts.acoustic.load_state_dict(state, strict=True, assign=True)
    parts.acoustic.decoder.set_r(r)
    parts.acoustic.eval()


def assign_generator(parts: Parts, state: dict[str, Any], folded: bool) -> None:
    """What `GAN.load_checkpoint(eval=True)` does for the generator: load, remove weight norm, eval."""
    parts.vocoder.load_state_dict(state, strict=True, assign=True)
    if not folded:
        parts.vocoder.remove_weight_norm()
    parts.vocoder.eval()


def fix_length(parts: Parts, stop_threshold: float | None) -> None:
    """Disable the stopnet where the model says so: every request then runs `max_decoder_steps` steps."""
    if stop_threshold is not None:
        parts.acoustic.decoder.stop_threshold = float(stop_threshold)


@dataclass
class PipelineModel:
    """Acoustic model + vocoder ready for inference, and what the loader did (a base.LoadedModel)."""

    acoustic: Any
    vocoder: Any  # the GAN generator
    vocoder_ap: Any
    sample_rate: int
    info: dict[str, Any] = field(default_factory=dict)

    def synthesize(self, text: str, seed: int) -> Audio:
        """Coqui Synthesizer's path (text → mel → renormalised mel → vocoder) under a fixed seed."""
        import torch

        ids = self.acoustic.tokenizer.text_to_ids(text)
        if not ids:
            raise StrategyError(f"no symbol of the acoustic model's vocabulary in the request text {text[:40]!r}")
        torch.manual_seed(seed)
        with torch.inference_mode():
            mel = self.acoustic.inference(torch.LongTensor(ids).unsqueeze(0))["model_outputs"][0]
            mel = self.acoustic.ap.denormalize(mel.float().numpy().T)
            vocoder_input = torch.tensor(self.vocoder_ap.normalize(mel)).unsqueeze(0)
            dtype = next(self.vocoder.parameters()).dtype
            wav = self.vocoder.inference(vocoder_input.to(dtype))
        return Audio(np.ascontiguousarray(wav.float().numpy(), dtype=np.float32).reshape(-1), self.sample_rate)

    stream_kind = "sentence"

    def synthesize_stream(self, text: str, seed: int) -> Iterator[Audio]:
        """Sentence by sentence, split as Coqui's `Synthesizer` splits for this pipeline (as for VITS)."""
        return by_sentence(self.synthesize, coqui.coqui_sentences(text, self.acoustic), seed)
