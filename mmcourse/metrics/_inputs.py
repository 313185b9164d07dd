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

from mmcourse.tensors import to_numpy

__all__ = ["to_numpy"]


def _to_numpy(x, name: str) -> np.ndarray:
    """A NumPy copy/view of ``x`` (tensor, array or list); empty input is an error."""
    try:
        arr = to_numpy(x)
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
