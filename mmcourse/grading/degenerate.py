"""Hidden cases that a constant answer passes, and the rule that keeps them from paying.

Some edge cases matter and stay among the hidden cases -- a retrieval threshold so high that
nothing is retrieved, a batch of one, ``k = |D|``, no present row -- but on them a constant
(the empty set, recall 1.0, loss 0.0, an all-True mask, zeros) is right. A case is
*degenerate* when one of ``candidates(expected)`` matches its reference answer; a part earns
credit for passing degenerate cases only when its function also passes at least one
non-degenerate case (``credited``). So a constant scores 0, while honest work that gets the
general cases right is still credited for the edge cases it handles.
"""

from __future__ import annotations

import numpy as np

from mmcourse.grading import codec


def _like(expected, fill):
    if isinstance(expected, np.ndarray):
        return np.full(expected.shape, fill, dtype=expected.dtype)
    if isinstance(expected, list):
        return [_like(e, fill) for e in expected]
    if isinstance(expected, dict):
        return {k: _like(v, fill) for k, v in expected.items()}
    if isinstance(expected, (bool, int, float)):
        return type(expected)(fill)
    return expected


def candidates(expected) -> list:
    """Constant answers of ``expected``'s shape: zeros, ones (all True), empty, 0.0, 1.0."""
    out = [_like(expected, 0), _like(expected, 1), [], np.zeros((0,), dtype=np.int64), 0.0, 1.0]
    if isinstance(expected, np.ndarray) and expected.dtype.kind == "f":
        out.append(np.full(expected.shape, 1.0 / max(expected.shape[-1] if expected.ndim else 1, 1)))
    return out


def is_degenerate(expected, atol: float, rtol: float) -> bool:
    """True if some constant answer passes a case whose reference answer is ``expected``."""
    for value in candidates(expected):
        try:
            if codec.compare(expected, value, atol, rtol) is None:
                return True
        except Exception:   # a candidate of another type: not a match
            continue
    return False


def credited(passed: list[bool], degenerate: list[bool]) -> int:
    """How many passed cases earn credit: degenerate ones only next to a non-degenerate pass."""
    general = sum(p and not d for p, d in zip(passed, degenerate))
    if general == 0 and not all(degenerate):
        return 0
    return sum(passed)
