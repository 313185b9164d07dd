"""Small helpers every part of the package needs, written once.

* ``model_device(model)``: the device a model's parameters live on (CPU for a model without any);
* ``to_numpy(x)``: a tensor, array or list as a NumPy array (detached, on the CPU, float32 for
  low-precision floats); it never imports PyTorch (a tensor is known by its ``detach`` and ``cpu``
  methods), so ``mmcourse.metrics`` stays importable without it;
* ``check_token_ids(tokens, vocab_size, where)``: ``(B, L)`` int64 ids in ``[0, vocab_size)``, or a
  clear error naming what was expected. The range is checked on the CPU only: on an accelerator it
  would read a value back to the host at every step;
* ``check_float(x, where, like=...)``: a floating-point tensor (of the same dtype as a module's
  weights, outside autocast), or a clear error instead of PyTorch's dtype mismatch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); CPU if it has none."""
    import torch

    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def to_numpy(x) -> np.ndarray:
    """``x`` (tensor, array, list or number) as an ``np.ndarray``; tensors are detached and moved
    to the CPU, and bfloat16/float16 become float32 (NumPy has no bfloat16)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def check_token_ids(tokens, vocab_size: int, where: str) -> Tensor:
    """Return ``tokens`` if it is a ``(B, L)`` int64 tensor of ids in ``[0, vocab_size)``; else
    raise a ``ValueError`` (``TypeError`` for a non-tensor) saying what ``where`` expects."""
    import torch

    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{where} expects token ids as a (batch, length) int64 tensor, "
                        f"got {type(tokens).__name__}")
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"{where} expects token ids (batch, length) int64, "
                         f"got {tuple(tokens.shape)} {tokens.dtype}")
    if tokens.device.type == "cpu" and tokens.numel():
        low, high = int(tokens.min()), int(tokens.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(f"{where} expects token ids in [0, {vocab_size}), got ids from "
                             f"{low} to {high}")
    return tokens


def check_float(x, where: str, like: Tensor | None = None) -> Tensor:
    """Return ``x`` if it is a floating-point tensor -- of ``like``'s dtype too, unless autocast is
    on for its device -- else raise a ``ValueError`` saying what ``where`` expects."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where} expects a float tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{where} expects a float tensor, got dtype {x.dtype}; convert it with "
                         f".float() (images: divide uint8 pixels by 255)")
    if like is not None and x.dtype != like.dtype and not _autocast_on(x.device.type):
        raise ValueError(f"{where} expects {like.dtype} input like its weights, got {x.dtype}; "
                         f"convert the input with .to({like.dtype}) or the model with .to({x.dtype})")
    return x


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch >= 2.4 takes the type; older ones had a
    function per device)."""
    import torch

    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()
