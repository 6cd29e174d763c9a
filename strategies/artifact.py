"""The inference artifact: a model's weights as inference needs them, written once by `ttsload models export`.

What export changes against the original checkpoint:
- weight norm folded: every `torch.nn.utils.parametrize` parametrization (Coqui's weight norm in the
  HiFi-GAN decoders, VITS's flows and WaveNet layers) is removed with its current value kept as a plain
  weight, so no forward recomputes `g * v / ||v||` again;
- training-only modules dropped (`TRAINING_ONLY`: VITS's discriminator and posterior encoder, Tacotron2's
  DDC coarse decoder; a pipeline's vocoder is its generator alone);
- one safetensors file, `inference.safetensors`, whose every tensor starts 64-byte aligned in the file, so
  a mapped load assigns every tensor with no copy (safetensors itself packs tensors at 8-byte offsets; the
  format allows no gaps, so uint8 padding tensors named `PAD_PREFIX*` fill them and are skipped on read).

The artifact's manifest (`manifest.json`, written like a fixture's) records every file's sha256, the
source model's sha256s, what was folded and dropped. The artifact loaders (`artifact_loaders.py`) rebuild
the same inference-only tree on the meta device and assign the mapped tensors strictly.
"""

from __future__ import annotations

import contextlib
import json
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ttsload.strategies.base import ModelFiles

ARTIFACT_FILE = "inference.safetensors"
ROLE = "artifact"  # ModelFiles.extras role of the artifact's weights; its manifest section is meta["artifact"]
PAD_PREFIX = "__ttsload_pad__."
ALIGN = 64
FORMAT = 1

# Root attributes inference never runs, by model class (the module tree the artifact loader rebuilds).
TRAINING_ONLY: dict[str, tuple[str, ...]] = {
    # discriminator; posterior encoder (training and voice conversion); the stochastic duration predictor's
    # posterior flows (its training loss: inference runs the reversed `flows` alone)
    "Vits": ("disc", "posterior_encoder", "duration_predictor.post_pre", "duration_predictor.post_convs",
             "duration_predictor.post_proj", "duration_predictor.post_flows"),
    "Tacotron2": ("coarse_decoder",),  # double-decoder consistency: a training loss only
}

_PATCHING = threading.RLock()
_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
           "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


@contextlib.contextmanager
def without_parametrizations() -> Iterator[None]:
    """Construct modules as if weight norm did not exist: registering a parametrization is a no-op, and
    removing one that is absent too (Coqui removes some right after adding them, e.g. VITS's conv_pre).

    Registration costs a dynamic subclass per module and a norm per weight (about a third of VITS's
    construction); the artifact's weights are already folded, so the plain module is the one it fills.
    Modules bind `remove_parametrizations` by name at import, so those bindings are swapped too. The swap
    is process-wide: constructions under it are serialised (`_PATCHING`), and a model another thread
    constructs meanwhile without it would lack its weight norm (its strict load would then fail).
    """
    with _PATCHING, _patched():
        yield


@contextlib.contextmanager
def _patched() -> Iterator[None]:
    from torch.nn.utils import parametrize

    register, remove = parametrize.register_parametrization, parametrize.remove_parametrizations

    # The signatures of torch.nn.utils.parametrize's register_parametrization and remove_parametrizations.
    def skip_register(module: nn.Module, tensor_name: str, parametrization: nn.Module, *,
                      unsafe: bool = False) -> nn.Module:
        return module

    def tolerant_remove(module: nn.Module, name: str, leave_parametrized: bool = True) -> nn.Module:
        return remove(module, name, leave_parametrized) if parametrize.is_parametrized(module, name) else module

    bound = [vars(m) for m in list(sys.modules.values())
             if m is not None and vars(m).get("remove_parametrizations") is remove]
    parametrize.register_parametrization = skip_register
    for namespace in bound:
        namespace["remove_parametrizations"] = tolerant_remove
    try:
        yield
    finally:
        parametrize.register_parametrization = register
        for namespace in bound:
            namespace["remove_parametrizations"] = remove


def fold_parametrizations(module: nn.Module) -> int:
    """Replace every parametrization (and old-style weight-norm hook) by its current value; return how many."""
    import torch
    from torch.nn.utils import parametrize
    from torch.nn.utils.weight_norm import WeightNorm

    folded = 0
    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            for name in list(sub.parametrizations.keys()):
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
                folded += 1
        for hook in [h for h in sub._forward_pre_hooks.values() if isinstance(h, WeightNorm)]:
            torch.nn.utils.remove_weight_norm(sub, hook.name)
            folded += 1
    return folded


def drop_training_only(module: nn.Module, names: list[str] | None = None) -> list[str]:
    """Delete the root's training-only submodules (dotted `names`, else TRAINING_ONLY by class); return those
    dropped (absent ones are skipped: a VITS without stochastic duration predictor has no post_* modules)."""
    wanted = names if names is not None else TRAINING_ONLY.get(type(module).__name__, ())
    dropped = []
    for path in wanted:
        parent_path, _, name = path.rpartition(".")
        parent = module
        for part in parent_path.split(".") if parent_path else []:
            parent = getattr(parent, part, None)
        if parent is not None and getattr(parent, name, None) is not None:
            delattr(parent, name)
            dropped.append(path)
    return dropped


def write_aligned(state: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> int:
    """Write `state` as safetensors with every tensor at a 64-byte-aligned file offset; return padding bytes."""
    entries: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    padding = 0
    for index, (name, tensor) in enumerate(sorted(state.items())):
        if offset % ALIGN:
            gap = ALIGN - offset % ALIGN
            entries[f"{PAD_PREFIX}{index}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            blobs.append(bytes(gap))
            offset, padding = offset + gap, padding + gap
        data = _tensor_bytes(tensor)
        dtype = _DTYPES.get(str(tensor.dtype).removeprefix("torch."))
        if dtype is None:
            raise ValueError(f"tensor {name}: dtype {tensor.dtype} has no safetensors code")
        entries[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        entries["__metadata__"] = dict(metadata)
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % ALIGN)  # the format allows trailing spaces: data starts aligned
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        for blob in blobs:
            handle.write(blob)
    return padding


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    flat = tensor.detach().contiguous().cpu().reshape(-1)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    return flat.numpy().tobytes()


def assign_strict(module: nn.Module, state: dict[str, Any]) -> None:
    """`load_state_dict(state, strict=True, assign=True)` in one pass over the keys.

    torch's version visits every module and scans every key for its prefix (modules x keys string
    tests: most of the artifact's weights phase on VITS). Modules with their own load logic
    (`_load_from_state_dict` overridden, e.g. BatchNorm) take torch's path, which honours it.
    """
    import torch

    from ttsload.strategies.base import StrategyError

    own = torch.nn.Module._load_from_state_dict
    if any(type(sub)._load_from_state_dict is not own for sub in module.modules()):
        module.load_state_dict(state, strict=True, assign=True)
        return
    slots: dict[str, tuple[Any, str, bool]] = {}
    for path, sub in module.named_modules():
        prefix = f"{path}." if path else ""
        slots.update({prefix + n: (sub, n, True) for n, v in sub._parameters.items() if v is not None})
        slots.update({prefix + n: (sub, n, False) for n, v in sub._buffers.items()
                      if v is not None and n not in sub._non_persistent_buffers_set})
    missing, unexpected = sorted(slots.keys() - state.keys()), sorted(state.keys() - slots.keys())
    if missing or unexpected:
        raise StrategyError(f"the artifact does not match the model's tree: missing {missing[:3]} "
                            f"({len(missing)}), unexpected {unexpected[:3]} ({len(unexpected)})")
    for key, (sub, name, is_parameter) in slots.items():
        tensor, old = state[key], (sub._parameters if is_parameter else sub._buffers)[name]
        if tensor.shape != old.shape:
            raise StrategyError(f"the artifact's {key} has shape {list(tensor.shape)}, the model's {list(old.shape)}")
        if is_parameter:
            sub._parameters[name] = torch.nn.Parameter(tensor, requires_grad=old.requires_grad)
        else:
            sub._buffers[name] = tensor


def read(path: Path) -> tuple[dict[str, Any], int]:
    """The artifact's tensors as views of one private mapping of the file (no copy, padding skipped), and
    the bytes that had to be copied because a tensor was not 64-byte aligned (0 for what export wrote).

    One mapping and one `set_` per tensor: safetensors' own `load_file` maps the same way but slices a
    storage per tensor in Python, most of the weights phase on VITS.
    """
    import torch

    codes = {code: getattr(torch, name) for name, code in _DTYPES.items()}
    with open(path, "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    header.pop("__metadata__", None)
    start = 8 + size
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
    state: dict[str, Any] = {}
    realigned = 0
    for name, entry in header.items():
        if name.startswith(PAD_PREFIX):
            continue
        dtype = codes[entry["dtype"]]
        begin, end = entry["data_offsets"]
        if (start + begin) % ALIGN:  # a file export did not write: copy the bytes to aligned memory
            raw = torch.empty(0, dtype=torch.uint8).set_(storage, start + begin, (end - begin,)).clone()
            state[name] = raw.view(dtype).reshape(entry["shape"])
            realigned += end - begin
        else:
            itemsize = torch.empty(0, dtype=dtype).element_size()
            state[name] = torch.empty(0, dtype=dtype).set_(storage, (start + begin) // itemsize, entry["shape"])
    return state, realigned


def section(files: ModelFiles) -> dict[str, Any]:
    """The artifact section of a model's manifest (what was folded and dropped), or a one-line error."""
    from ttsload.strategies.base import StrategyError

    found = files.meta.get(ROLE)
    if not isinstance(found, dict) or ROLE not in files.extras:
        raise StrategyError(f"model '{files.name}' has no inference artifact (make one with "
                            f"`ttsload models export {files.name}`)")
    if found.get("format") != FORMAT:
        raise StrategyError(f"inference artifact {files.extras[ROLE]} has format {found.get('format')}, "
                            f"this ttsload reads {FORMAT}: export it again")
    return found
