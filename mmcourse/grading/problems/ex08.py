"""Exercise 08 (generation): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn


def _greedy_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        table = randn(g, 5, 5)
        table[:, 4] += 1.5
        return [(table, 0, 4, 6), (randn(g, 6, 6), 1, 5, 3)]
    cases = []
    for v, eos_boost, max_len in [(4, 0.0, 5), (7, 1.0, 10), (10, -5.0, 8), (12, 0.5, 1),
                                  (6, 3.0, 4)]:
        table = randn(g, v, v)
        table[:, v - 1] += eos_boost
        cases.append((table, randint(g, 0, v - 2), v - 1, max_len))
    return cases


def _logprob_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 4), torch.tensor([2, 1, 3]), 0)]
    cases = []
    for v, n in [(3, 1), (6, 5), (10, 12), (8, 4)]:
        cases.append((randn(g, v, v) * 2, torch.randint(0, v, (n,), generator=g), randint(g, 0, v - 1)))
    cases.append((randn(g, 5, 5) * 300, torch.randint(0, 5, (6,), generator=g), 2))  # stable?
    return cases


EX08 = Exercise("08_autoregressive_generation", "Greedy decoding and the sequence log-probability", (
    Part("q1", "greedy_decode", 3, ref.greedy_decode, _greedy_cases,
         forbidden=("greedy", "generate", "beam_search", "greedy_decode"),
         hint="start from bos; append argmax table[previous]; stop after eos or max_len tokens"),
    Part("q2", "sequence_log_prob", 2, ref.sequence_log_prob, _logprob_cases,
         forbidden=("log_prob", "log_prob_of_caption", "sequence_log_prob"),
         hint="sum over t of log softmax(table[y_{t-1}])[y_t], with y_0 = bos", atol=1e-4),
))
