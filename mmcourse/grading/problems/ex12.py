"""Exercise 12 (alignment): DTW, the CTC forward recursion, and DTW as a recogniser of unseen voices."""


from __future__ import annotations

import functools

import torch

from mmcourse.grading import references as ref
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn


def _dtw_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        x = randn(g, 4, 2)
        return [(x, torch.repeat_interleave(x, 2, dim=0)),          # a slowed-down copy: 0
                (randn(g, 1, 3), randn(g, 5, 3)),                   # one frame against five
                (randn(g, 6, 2), randn(g, 4, 2))]
    cases = [(randn(g, n, f), randn(g, m, f)) for n, m, f in [(1, 1, 1), (7, 3, 4), (12, 15, 2), (3, 9, 1)]]
    x = randn(g, 5, 3)
    cases.append((x, torch.repeat_interleave(x, torch.tensor([1, 3, 1, 2, 1]), dim=0)))
    return cases


def _ctc_cases(g: torch.Generator, public: bool) -> Cases:
    def lp(t, v, scale=1.0):
        return (randn(g, t, v) * scale).log_softmax(1)

    if public:
        return [(lp(6, 4), [1, 2], 0),
                (lp(5, 4), [3], 0),                                 # target of length 1
                (lp(5, 3), [1, 1, 2], 0),                           # a repeat needs a blank between
                (lp(5, 3), [2, 2, 2], 0),                           # just long enough: T = S + repeats
                (lp(80, 5, 30.0), [1, 2, 3, 4, 1], 0),              # probabilities underflow
                (lp(7, 5), [0, 1, 2], 4)]                           # the blank need not be 0
    cases = []
    for t, v, s, blank in [(9, 6, 3, 0), (12, 11, 5, 10), (3, 4, 1, 2), (20, 5, 6, 0)]:
        symbols = [k for k in range(v) if k != blank]
        target = [symbols[randint(g, 0, len(symbols) - 1)] for _ in range(s)]
        cases.append((lp(t, v, 2.0), target, blank))
    cases.append((lp(6, 3), [1, 1, 1], 0))                              # 3 + 2 repeats = 5 <= 6
    cases.append((lp(5, 3), [2, 2, 2], 0))                              # exactly 5 frames
    cases.append((lp(60, 6, 40.0), [1, 2, 3, 1, 2, 3, 5], 0))
    return cases


@functools.lru_cache(maxsize=8)
def _words(seed: int, test_words: int):
    """One template per digit from the train voices, and ``test_words`` words by test voices, cut
    out of spoken digit strings with their true boundaries, as ``(frames, 32)`` tensors."""
    from mmcourse.data.digit_strings import load_digit_strings

    s = load_digit_strings(seed=seed, sizes={"train": 30, "val": 1, "test": 8})

    def cut(split):
        out = []
        for i in range(len(split)):
            n = int(split.tensors["digit_lengths"][i])
            for (a, b), d in zip(split.meta["boundaries"][i], split.tensors["digits"][i, :n].tolist()):
                out.append((split.tensors["audio"][i, :, a:b].T.clone(), d))
        return out

    templates = {}
    for w, d in cut(s.train):
        templates.setdefault(d, w)
    words = cut(s.test)[:test_words]
    digits = sorted(templates)
    return ([templates[d] for d in digits], digits, [w for w, _ in words], [d for _, d in words])


def _word_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [_words(0, 12)]
    return [_words(randint(g, 1, 10_000), n) for n in (6, 10, 14)]


EX12 = Exercise("12_alignment_dtw_and_ctc", "DTW, the CTC forward recursion, DTW as a recogniser", (
    Part("q1", "dtw_distance", 3, ref.dtw_distance, _dtw_cases, forbidden=("dtw", "DTW", "fastdtw"),
         hint="D[i, j] = C[i, j] + min(D[i-1, j], D[i, j-1], D[i-1, j-1]), with D = inf outside the "
              "grid and D[0, 0] = C[0, 0]; return D[N-1, M-1]", atol=1e-6),
    Part("q2", "ctc_nll", 4, ref.ctc_nll, _ctc_cases,
         forbidden=("ctc_loss", "CTCLoss", "ctc_alpha", "_ctc_loss"),
         hint="l' = blank, l1, blank, ..., lS, blank; alpha_t(s) = y_t(l'_s) + logsumexp of "
              "alpha_{t-1}(s), alpha_{t-1}(s-1) and, if l'_s is not blank and differs from l'_{s-2}, "
              "alpha_{t-1}(s-2); in log space; answer -logsumexp(alpha_T(2S), alpha_T(2S-1))",
         atol=1e-4),
    # an experiment (its own time allowance); the margin is under one word of any hidden case
    Part("q3", "dtw_word_accuracy", 3, ref.dtw_word_accuracy, _word_cases, atol=1e-3, case_timeout=30,
         forbidden=("dtw", "DTW", "fastdtw"),
         hint="for each word: the DTW distance (your dtw_distance) to every template; take the label "
              "of the nearest; return the fraction of words whose label is right"),
))
