"""What every metric accepts, and the checks that turn it into NumPy arrays.

A metric takes PyTorch tensors, NumPy arrays or (nested) lists; ``to_numpy(x)`` turns any of
them into an ``np.ndarray``, detached from autograd and on the CPU (a bfloat16 tensor becomes
float32: NumPy has no bfloat16). The private checks built on it reject empty, ragged or
non-numeric input with an error that names the argument. Class labels are integers
``0 .. C-1``, and a ratio with a zero denominator is 0, scikit-learn's ``zero_division=0``::

    safe_div(a, b) = a / b  if b != 0  else 0

PyTorch is never imported here: a tensor is recognised by its ``detach`` and ``cpu`` methods.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_numpy"]


def _detached(x):
    """A tensor as a NumPy array (detached, on the CPU, bfloat16 -> float32); anything else as is."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch.Tensor, without importing torch
        t = x.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16
            t = t.float()
        x = t.numpy()
    return x


def to_numpy(x) -> np.ndarray:
    """``x`` (a tensor, array, list or number) as an ``np.ndarray``: detached, on the CPU.

    A bfloat16 tensor becomes float32; an array is returned as it is (no copy). Unlike the
    metrics' own checks this accepts empty input, e.g. the predictions of an empty split.
    """
    return np.asarray(_detached(x))


def _to_numpy(x, name: str) -> np.ndarray:
    """A NumPy copy/view of ``x`` (tensor, array or list); empty input is an error."""
    x = _detached(x)
    try:
        arr = np.asarray(x)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular array, got ragged input") from err
    if arr.dtype == object:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__} of objects")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one element")
    return arr


def _labels(x, name: str) -> np.ndarray:
    """1-D array of non-negative integer class labels."""
    arr = _to_numpy(x, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"{name} must hold integer class labels, got non-integer values of dtype "
                f"{arr.dtype}"
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} must hold class labels >= 0, got {arr.min()}")
    return arr


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
