"""A safe wire format for the values a graded function returns, and the comparison of answers.

The sandbox encodes a student's return value as JSON: numbers, strings, lists and dicts as
they are, tensors and arrays as ``{"__nd__": [dtype, shape, base64 bytes]}``. The grader
decodes it with ``decode``, which builds only plain Python values and NumPy arrays of a few
whitelisted dtypes -- never ``pickle``, never a student's class -- so a return value cannot run
code in the grading process. ``compare`` then checks an answer against the reference's.
"""

from __future__ import annotations

import base64
import math

import numpy as np

DTYPES = ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32", "float64")
MAX_DEPTH = 8
MAX_ITEMS = 10_000
MAX_BYTES = 16 * 2**20


class EncodeError(ValueError):
    pass


def encode(value, depth: int = 0):
    """``value`` (tensor, array, number, str, list/tuple, dict) → JSON-able data."""
    if depth > MAX_DEPTH:
        raise EncodeError("the returned value is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**62 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    mod = type(value).__module__.split(".")[0]
    if mod == "torch" and hasattr(value, "detach"):
        t = value.detach().cpu()
        if t.is_complex() or str(t.dtype).replace("torch.", "") not in DTYPES:
            t = t.double() if t.is_floating_point() else t
        value = t.contiguous().numpy()
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype.name not in DTYPES:
            raise EncodeError(f"returned an array of dtype {value.dtype}")
        if value.nbytes > MAX_BYTES:
            raise EncodeError(f"returned an array of {value.nbytes / 2**20:.0f} MB")
        arr = np.ascontiguousarray(value)
        return {"__nd__": [arr.dtype.name, list(arr.shape), base64.b64encode(arr.tobytes()).decode()]}
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise EncodeError(f"returned a sequence of {len(value)} items")
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    raise EncodeError(f"returned a {type(value).__name__}, not a tensor, number or sequence")


def decode(data, depth: int = 0):
    """The inverse of ``encode``, trusting nothing: only plain values and whitelisted arrays."""
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [decode(v, depth + 1) for v in data[:MAX_ITEMS]]
    if isinstance(data, dict):
        if set(data) == {"__float__"} and data["__float__"] in ("nan", "inf", "-inf"):
            return float(data["__float__"])
        if set(data) == {"__nd__"}:
            dtype, shape, raw = data["__nd__"]
            if dtype not in DTYPES or not all(isinstance(s, int) and s >= 0 for s in shape):
                raise ValueError(f"bad array header {dtype} {shape}")
            buf = base64.b64decode(raw)
            if len(buf) != math.prod(shape) * np.dtype(dtype).itemsize:
                raise ValueError("array data does not match its shape")
            return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()
        if set(data) == {"__dict__"}:
            return {_hashable(decode(k, depth + 1)): decode(v, depth + 1) for k, v in data["__dict__"]}
    raise ValueError(f"unexpected value of type {type(data).__name__}")


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _as_array(x):
    """Numbers and (nested) lists of numbers as an array; anything else unchanged."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (bool, int, float)):
        return np.asarray(x)
    if isinstance(x, list):
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError):
            return x
        if arr.dtype.kind in "biuf":
            return arr
    return x


def _shape(x) -> str:
    return str(tuple(x.shape)) if isinstance(x, np.ndarray) else type(x).__name__


def compare(expected, got, atol: float, rtol: float, where: str = "the result") -> str | None:
    """``None`` if ``got`` matches ``expected`` (both decoded), else a short reason."""
    if isinstance(expected, list) and isinstance(got, list) and (
            any(isinstance(e, (list, np.ndarray)) for e in expected) or not expected):
        if len(expected) != len(got):
            return f"{where}: expected {len(expected)} values, got {len(got)}"
        for i, (e, o) in enumerate(zip(expected, got)):
            reason = compare(e, o, atol, rtol, f"{where}[{i}]")
            if reason:
                return reason
        return None
    if isinstance(expected, dict) and isinstance(got, dict):   # an experiment's named results
        if set(expected) != set(got):
            return f"{where}: expected the keys {sorted(map(str, expected))}, got {sorted(map(str, got))}"
        for key, e in expected.items():
            reason = compare(e, got[key], atol, rtol, f"{where}[{key!r}]")
            if reason:
                return reason
        return None
    e, o = _as_array(expected), _as_array(got)
    if not isinstance(e, np.ndarray):
        return None if e == o else f"{where}: expected {e!r}, got {o!r}"
    if not isinstance(o, np.ndarray):
        return f"{where}: expected an array of shape {tuple(e.shape)}, got a {type(got).__name__}"
    if e.shape != o.shape:
        if e.ndim == 0 and o.size == 1:
            o = o.reshape(())
        else:
            return f"{where}: expected shape {tuple(e.shape)}, got {tuple(o.shape)}"
    if e.dtype.kind == "b":
        if o.dtype.kind != "b":
            return f"{where}: expected a bool tensor, got {o.dtype}"
        bad = int((e != o).sum())
        return f"{where}: {bad} of {e.size} entries differ" if bad else None
    if e.dtype.kind in "iu":
        if e.size and o.dtype.kind not in "iu":
            return f"{where}: expected integers, got {o.dtype}"
        bad = int((e != o).sum()) if e.size else 0
        return f"{where}: {bad} of {e.size} entries differ" if bad else None
    if o.dtype.kind not in "biuf":
        return f"{where}: expected numbers, got {o.dtype}"
    o = o.astype(np.float64)
    e = e.astype(np.float64)
    if not np.isfinite(o[np.isfinite(e)]).all():
        return f"{where}: contains NaN or inf where the reference is finite"
    close = np.isclose(o, e, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return None
    worst = float(np.nanmax(np.abs(o - e)))
    return f"{where}: {int((~close).sum())} of {e.size} entries differ (largest error {worst:.3g})"
