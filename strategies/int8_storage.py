"""int8 weight *storage* for layers dynamic quantization cannot touch (convolutions).

Dynamic int8 quantizes Linear/LSTM compute; a HiFi-GAN is all convolutions, so its only int8 saving
is on disk: each conv weight is stored as int8 with one float32 scale per output channel and turned
back into float32 at load. Compute stays float32 (the output is close to, not equal to, fp32).
Layout of the stored dict: `<key>.q` (int8) and `<key>.scale` (float32, broadcastable against the
weight) for every conv weight; every other tensor as it was.
"""

from __future__ import annotations

from typing import Any

QUANTIZED, SCALE = ".q", ".scale"


def quantize(state: dict[str, Any], channel_axis: dict[str, int]) -> dict[str, Any]:
    """Symmetric int8 per channel for the weights named in `channel_axis` (key -> output-channel axis).

    A Conv1d weight [out, in, k] has its output channels on axis 0, a ConvTranspose1d [in, out, k] on 1.
    """
    import torch

    stored: dict[str, Any] = {}
    for key, value in state.items():
        if key not in channel_axis:
            stored[key] = value.detach().contiguous()
            continue
        axis = channel_axis[key]
        reduce = tuple(i for i in range(value.dim()) if i != axis)
        scale = value.detach().abs().amax(dim=reduce, keepdim=True).clamp_min(1e-12) / 127.0
        stored[key + QUANTIZED] = torch.round(value.detach() / scale).clamp(-127, 127).to(torch.int8).contiguous()
        stored[key + SCALE] = scale.to(torch.float32).contiguous()
    return stored


def dequantize(stored: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The float32 state dict back, and how many bytes its tensors take in float32."""
    import torch

    state: dict[str, Any] = {}
    for key, value in stored.items():
        if key.endswith(QUANTIZED):
            base = key.removesuffix(QUANTIZED)
            state[base] = value.to(torch.float32) * stored[base + SCALE]
        elif not key.endswith(SCALE):
            state[key] = value
    fp32_bytes = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    return state, fp32_bytes
