"""The fused LSTM kernel as every core module calls it, with one fallback: float32 on a CPU whose oneDNN has no
bfloat16.

Under CPU autocast to bfloat16 (`--trainer.precision=bf16-mixed` on CPU), PyTorch hands nn.LSTM to oneDNN in
bfloat16. A CPU without bfloat16 instructions (no AVX512-BF16 or AMX: many AMD EPYC and older Intel parts) has no
such kernel, and the call fails ("could not create a primitive descriptor for the LSTM forward propagation
primitive"). There the LSTM runs in float32 instead, autocast off for its call alone, and says so once.
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


@functools.cache
def cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: nothing to fall back from
        return True


def _needs_float32(inputs: Tensor | PackedSequence) -> bool:
    if not torch.is_autocast_enabled("cpu"):  # the usual case, asked first: every LSTM call passes here
        return False
    data = inputs.data if isinstance(inputs, PackedSequence) else inputs
    return data.device.type == "cpu" and torch.get_autocast_dtype("cpu") == torch.bfloat16 and not cpu_has_bf16()


@functools.cache
def _say_float32() -> None:
    warnings.warn("bf16-mixed on a CPU without bfloat16 support: the LSTM runs in float32 here, and the rest of the "
                  "model emulates bfloat16, slower than --trainer.precision=32-true on this CPU", stacklevel=3)


def fused(kernel: Callable, inputs, hx: Optional[tuple[Tensor, ...]]):
    """kernel(inputs, hx): nn.LSTM.forward or torch.lstm's fused call, in float32 where this CPU cannot run it in
    bfloat16 (see the module's docstring)."""
    if not _needs_float32(inputs):
        return kernel(inputs, hx)
    _say_float32()
    with torch.autocast("cpu", enabled=False):
        return kernel(inputs.float(), None if hx is None else tuple(h.float() for h in hx))


class LSTM(nn.LSTM):
    """nn.LSTM (the same parameters and state dict), called through `fused`."""

    def forward(self, input, hx=None):  # noqa: A002 (nn.LSTM's own argument name)
        return fused(super().forward, input, hx)
