"""Mixed precision on CUDA: bf16 where the GPU supports it (no loss scaling), else fp16 with a
``GradScaler``; full fp32 everywhere else."""

from __future__ import annotations

import torch


def amp_dtype() -> torch.dtype:
    """The autocast dtype on CUDA: bfloat16 where the GPU supports it, else float16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(dev: torch.device, amp: bool, dtype: torch.dtype | None = None):
    """The autocast context of one step; pass ``dtype`` (``amp_dtype()``, asked once per run)
    so that the step does not query the device again."""
    if not amp:
        return torch.autocast(device_type=dev.type, enabled=False)
    return torch.autocast(device_type="cuda", dtype=dtype or amp_dtype())


def resolve_amp(amp: bool | None, dev: torch.device) -> bool:
    """``amp=None`` means on for CUDA, off elsewhere; ``amp=True`` off CUDA is an error."""
    if amp is None:
        return dev.type == "cuda"
    if amp and dev.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, but training runs on {dev}")
    return bool(amp)
