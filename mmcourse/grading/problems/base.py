"""What a graded exercise is: its parts (one function each, with a reference, test cases and
forbidden names), and the public / hidden cases drawn from a seed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

Cases = list[tuple]


@dataclass(frozen=True)
class Part:
    """One graded function: ``name(*args)`` compared with ``reference(*args)`` on every case."""

    id: str
    function: str
    points: float
    reference: Callable
    cases: Callable[[torch.Generator, bool], Cases]
    forbidden: tuple[str, ...] = ()
    atol: float = 1e-5
    rtol: float = 1e-4
    hint: str = ""
    #: an experiment part's own allowance per hidden case, in seconds (it trains or evaluates a
    #: model); the grader gives such a case the larger of this and its ``case_timeout``
    case_timeout: float | None = None
    #: names the exercise's other parts forbid that this part's cases may call at run time (an
    #: experiment that trains with the library's cross-entropy while another part writes its own)
    allowed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    parts: tuple[Part, ...] = field(default_factory=tuple)

    @property
    def points(self) -> float:
        return sum(p.points for p in self.parts)

    def part(self, pid: str) -> Part:
        for p in self.parts:
            if p.id == pid:
                return p
        raise KeyError(f"exercise {self.name} has no part {pid!r}; its parts are "
                       f"{[p.id for p in self.parts]}")


def randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g)


def randint(g: torch.Generator, low: int, high: int) -> int:
    """An int in ``[low, high]`` (both inclusive)."""
    return int(torch.randint(low, high + 1, (1,), generator=g))


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


PUBLIC_SEED = 0


def public_cases(part: Part) -> Cases:
    g = torch.Generator().manual_seed(PUBLIC_SEED)
    return part.cases(g, True)


def hidden_cases(part: Part, seed: int) -> Cases:
    g = torch.Generator().manual_seed(seed)
    return part.cases(g, False)


def single_threaded(fn: Callable) -> Callable:
    """``fn`` run on one thread, as the sandbox runs the student's code: an experiment part's
    reference then does the same arithmetic, and does not fight other processes for cores."""

    @functools.wraps(fn)
    def run(*args):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args)
        finally:
            torch.set_num_threads(threads)
    return run
