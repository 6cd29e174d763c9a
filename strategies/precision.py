"""Reduced-precision conversions, each reporting how much of the model it really converted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def to_int8_dynamic(model: nn.Module) -> dict[str, Any]:
    """Quantize Linear/LSTM/LSTMCell layers to int8 in place; report the fraction of parameters they held.

    transformers' GPT-2 `Conv1D` layers (XTTS's GPT) are Linear layers stored transposed, which
    quantize_dynamic does not know: they become nn.Linear first (`conv1d_to_linear`), or most of
    such a model would silently stay fp32. A model without such layers (VITS is all convolutions)
    converts nothing and says so: int8_fraction = 0.0 makes the no-op visible instead of implying a saving.

    The float layers it replaces are left in reference cycles (torch.ao's qconfig keeps a closure over its
    module), which only Python's cyclic collector frees, at a time its thresholds choose: on XTTS 1.6 GiB of
    fp32 GPT weights stayed resident through a whole cell, so int8 held more trimmed memory than fp32.
    A full collection here frees them as part of the conversion (its cost is in `convert_s`;
    `collected` is what it found).
    """
    import gc

    import torch
    from torch import nn

    conv1d = conv1d_to_linear(model)
    total = _count(model)
    targets = {nn.Linear, nn.LSTM, nn.LSTMCell}  # LSTMCell: Tacotron2's attention and decoder RNNs
    quantizable = [m for m in model.modules() if type(m) in targets]
    converted, layers = sum(_count(m) for m in quantizable), len(quantizable)
    del quantizable  # the float layers must have no referrer left when the collector runs
    if layers:
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model, targets, dtype=torch.qint8, inplace=True)
    return {"int8_fraction": converted / total if total else 0.0, "int8_layers": layers,
            "conv1d_to_linear": conv1d, "collected": gc.collect() if layers else 0}


def conv1d_to_linear(model: nn.Module) -> int:
    """Replace every transformers `Conv1D` by the nn.Linear that computes the same (weight transposed).

    Conv1D computes addmm(bias, x, W) with W stored [in, out]; nn.Linear stores [out, in]. A module
    shared by several parents (XTTS's GPT-2 is also its inference wrapper's transformer) becomes one
    Linear set on every parent. Returns how many were converted; transformers is never imported here
    (a model holding Conv1D layers has imported it already).
    """
    import sys

    from torch import nn

    conv1d = getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
    if conv1d is None:
        return 0
    done: dict[int, nn.Linear] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, conv1d):
                if id(child) not in done:
                    linear = nn.Linear(*child.weight.shape, device="meta")  # no init work: both tensors replaced
                    linear.weight = nn.Parameter(child.weight.detach().t().contiguous(), requires_grad=False)
                    linear.bias = nn.Parameter(child.bias.detach().clone(), requires_grad=False)
                    done[id(child)] = linear
                setattr(parent, name, done[id(child)])
    return len(done)


def to_bf16(model: nn.Module) -> dict[str, Any]:
    """Cast float parameters and buffers to bfloat16; outputs of `inference` go back to float32."""
    import torch

    _wrap_float32_islands(model)  # int8 layers converted before keep their float32 input
    total = _count(model)
    before = sum(p.numel() for p in model.parameters() if p.dtype == torch.float32)
    for module in model.modules():
        if getattr(module, "_ttsload_fp32_island", False):
            continue
        for param in module.parameters(recurse=False):
            if param.dtype == torch.float32:
                param.data = param.data.to(torch.bfloat16)
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.dtype == torch.float32:
                setattr(module, name, buf.to(torch.bfloat16))
    after = sum(p.numel() for p in model.parameters() if p.dtype == torch.float32)
    _return_float32(model)
    return {"bf16_fraction": (before - after) / total if total else 0.0}


def _return_float32(model: nn.Module) -> None:
    """Wrap `model.inference` so floating outputs come back as float32 (numpy has no bf16).

    Models without an `inference` method (Kokoro's KModel) cast their own output in `synthesize`.
    """
    import torch

    inner = getattr(model, "inference", None)
    if inner is None:
        return

    def to_float(value: object) -> object:  # any output structure: tensors inside are found by isinstance
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()
        if isinstance(value, dict):
            return {k: to_float(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_float(v) for v in value)
        return value

    def inference(*args: Any, **kwargs: Any) -> Any:
        return to_float(inner(*args, **kwargs))

    model.inference = inference


def _wrap_float32_islands(model: nn.Module) -> None:
    """Dynamic-quantized layers take float32 input: cast around them if the rest turns bf16."""
    import torch
    from torch import nn

    class Float32Island(nn.Module):
        _ttsload_fp32_island = True

        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, *args: object) -> object:  # tensors, or tuples of them (an LSTM state)
            dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
            out = self.inner(*(_cast_floats(a, torch.float32) for a in args))
            return _cast_floats(out, dtypes.pop() if len(dtypes) == 1 else torch.float32)

    quantized_types = ("DynamicQuantizedLinear", "DynamicQuantizedLSTM", "Linear", "LSTM", "LSTMCell")
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if type(child).__module__.startswith("torch.ao.nn.quantized") and type(child).__name__ in quantized_types:
                setattr(parent, child_name, Float32Island(child))


def _cast_floats(value: object, dtype: torch.dtype) -> object:
    """Floating tensors, also inside tuples (an LSTMCell's (h, c) state), cast to `dtype`."""
    import torch

    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_cast_floats(v, dtype) for v in value)
    return value
