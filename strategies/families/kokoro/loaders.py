"""Loaders of the Kokoro family: how the weights of a KModel reach memory.

`eager` is kokoro's own path (random init, then the checkpoint copied in) but strict; `mmap`
skips parameter init, maps the checkpoint and assigns its tensors (no copy); `mmap-meta` also
constructs on the meta device; `int8` adds dynamic int8 quantization of every Linear and LSTM (the
`quantized` preset for this family); `bf16` computes under bf16 autocast.

Why bf16 is autocast and not a cast of the weights: kokoro's forward builds float32 tensors of its
own (alignment matrices, padding, noise) and feeds them to LSTMs and AdaIN layers, which refuse
bf16 weights with float32 input. So the weights stay float32 (no memory saved) and matmuls and
convolutions run in bf16: the lever on CPUs with bf16 units (AMX, avx512_bf16).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from ttsload.strategies import precision
from ttsload.strategies.base import ModelFiles, PhasedLoader
from ttsload.strategies.families.kokoro import model as kokoro


@contextlib.contextmanager
def empty_checkpoint() -> Iterator[Path]:
    """A file holding torch.save({}) for KModel's constructor to load, so nothing is read twice.

    It lives in a private directory (mode 0700, unpredictable name) removed afterwards: a fixed name in the
    shared temp folder could be planted by another user with a pickle that KModel's loader would read.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="ttsload-kokoro-") as private:
        path = Path(private) / "empty.pth"
        torch.save({}, path)
        yield path


class KokoroLoader(PhasedLoader):
    """Kokoro on the public phase template; subclasses choose init and mmap."""

    family = "kokoro"
    construct_mode: ClassVar[str] = "init"
    mmap: ClassVar[bool] = False

    def weight_files(self, files: ModelFiles) -> list[Path]:
        return [files.checkpoint, files.extra("voice")]

    def import_runtime(self, threads: int | None) -> dict[str, Any]:
        return kokoro.import_runtime(threads)

    def construct(self, files: ModelFiles) -> Any:
        with empty_checkpoint() as empty:
            return kokoro.construct(kokoro.read_config(files.config), empty, self.construct_mode)

    def construct_facts(self) -> dict[str, Any]:
        return {"mode": self.construct_mode}

    def fill(self, model: Any, files: ModelFiles) -> Any:
        import torch

        state = torch.load(files.checkpoint, map_location="cpu", weights_only=True, mmap=self.mmap)
        kokoro.load_strict(model, state, files.checkpoint, assign=self.construct_mode != "init")
        return model.eval()

    def ready(self, model: Any, files: ModelFiles, info: dict[str, Any]) -> kokoro.KokoroModel:
        info.setdefault("max_phonemes", kokoro.MAX_PHONEMES)
        return kokoro.KokoroModel(model, dict(model.vocab), kokoro.load_voice(files), info)


class KokoroEagerLoader(KokoroLoader):
    name = "eager"
    summary = "kokoro's KModel path (random init, checkpoint copied in), loaded strictly"


class KokoroMmapLoader(KokoroLoader):
    name = "mmap"
    summary = "skip init (transformers + iSTFTNet) + torch.load(mmap=True, weights_only=True) + assign"
    construct_mode = "skip"
    mmap = True
    maps_checkpoint = True


class KokoroMetaMmapLoader(KokoroMmapLoader):
    name = "mmap-meta"
    summary = "meta-device construction (no weight-norm work) + torch.load(mmap=True) + assign"
    construct_mode = "meta"


class KokoroBf16Loader(KokoroEagerLoader):
    name = "bf16"
    summary = "kokoro eager, then bf16 autocast compute (weights stay float32: kokoro mixes in float32 tensors)"
    exact = False

    def convert(self, model: Any) -> dict[str, Any]:
        return {"bf16_fraction": 0.0, "compute_dtype": "bfloat16 (autocast)"}

    def ready(self, model: Any, files: ModelFiles, info: dict[str, Any]) -> kokoro.KokoroModel:
        import torch

        loaded = super().ready(model, files, info)
        loaded.autocast = torch.bfloat16
        return loaded


class KokoroInt8Loader(KokoroEagerLoader):
    name = "int8"
    summary = "kokoro eager, then torch.ao quantize_dynamic on every Linear and LSTM"
    exact = False

    def convert(self, model: Any) -> dict[str, Any]:
        info = precision.to_int8_dynamic(model)
        from torch.ao.nn.quantized.dynamic import LSTM

        for module in model.modules():  # kokoro calls lstm.flatten_parameters(), which quantized LSTMs lack
            if isinstance(module, LSTM):
                module.flatten_parameters = lambda: None
        return info


LOADERS = [KokoroEagerLoader, KokoroMmapLoader, KokoroMetaMmapLoader, KokoroInt8Loader, KokoroBf16Loader]
