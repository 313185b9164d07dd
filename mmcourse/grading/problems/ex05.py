"""Exercise 05 (joint): the joint softmax and its cross-entropy, the expected calibration error,
temperature fitting, and a calibration experiment on the modality-competition data."""


from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded
from mmcourse.metrics import expected_calibration_error


def _joint_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), 1.0), (randn(g, 2, 10), 2.0),
                (randn(g, 3, 5) * 1000, 1.0)]                                 # exp(1000) = inf
    return [(randn(g, 1, 2), 1.0), (randn(g, 6, 10), 1.0), (randn(g, 5, 4) * 3, 0.5),
            (randn(g, 3, 7), 4.0), (randn(g, 4, 5) * 1000, 1.0),   # large scores: stable?
            (torch.full((2, 3), -800.0), 1.0)]


def _ce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 2, 1, 1])),
                (torch.tensor([[0.0, 200.0, -200.0], [5.0, 1.0, 0.0]]), torch.tensor([2, 0]))]
    cases = []
    for n, c, scale in [(1, 2, 1), (8, 10, 1), (5, 3, 4), (6, 4, 500), (3, 6, 50)]:
        cases.append((randn(g, n, c) * scale, torch.randint(0, c, (n,), generator=g)))
    return cases


def _ece_ref(probs, labels, n_bins):
    return expected_calibration_error(probs, labels, n_bins)


def _ece_cases(g: torch.Generator, public: bool) -> Cases:
    def case(n, c, scale, bins):
        probs = torch.softmax(randn(g, n, c) * scale, dim=-1)
        return (probs, torch.randint(0, c, (n,), generator=g), bins)
    if public:
        edges = torch.tensor([[0.5, 0.5], [1.0, 0.0], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8], [0.9, 0.1]])
        return [case(8, 3, 2.0, 5),
                (edges, torch.tensor([0, 0, 0, 0, 1, 1]), 10)]   # conf on edges, empty bins
    return [case(20, 4, 1.0, 10), case(50, 3, 3.0, 15), case(7, 10, 0.5, 5), case(30, 2, 2.0, 20),
            (torch.tensor([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5], [0.4, 0.6]]), torch.tensor([1, 1, 0, 1]), 4)]


def _fit_temperature(logits, labels, low: float = 0.05, high: float = 20.0) -> float:
    """The ``T`` in ``[low, high]`` minimising the mean NLL of ``softmax(logits / T)`` (golden-section
    search on ``log T``, in float64; the NLL is convex in ``1/T``, so the minimum is unique)."""
    z, y = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    ratio = (math.sqrt(5) - 1) / 2
    a, b = math.log(low), math.log(high)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(100):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def _temperature_cases(g: torch.Generator, public: bool) -> Cases:
    def case(n, c, scale, t_true):
        z = randn(g, n, c) * scale
        labels = torch.multinomial(torch.softmax(z / t_true, dim=-1), 1, generator=g)[:, 0]
        return (z, labels)
    if public:
        return [case(300, 5, 4.0, 2.5), case(200, 3, 1.0, 0.5)]           # over- and under-confident
    return [case(400, 10, 6.0, 3.0), case(250, 4, 2.0, 1.0), case(300, 2, 1.5, 0.6),
            case(500, 6, 8.0, 5.0)]


def _xy(split):
    return torch.cat([split.tensors["x1"], split.tensors["x2"]], 1), split.tensors["label"]


@single_threaded
def calibration_experiment(seed: int) -> dict:
    """The reference of q5 (the protocol the master states)."""
    from mmcourse.data.synergy import load_competition

    data = load_competition(n_train=200, n_val=500, n_test=1000, seed=seed)
    (x, y), (x_val, y_val), (x_test, y_test) = _xy(data.train), _xy(data.val), _xy(data.test)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x.shape[1], 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z_val, z_test = model(x_val), model(x_test)
    t = _fit_temperature(z_val, y_val)
    return {"temperature": t,
            "ece_before": expected_calibration_error(torch.softmax(z_test, -1), y_test, 10),
            "ece_after": expected_calibration_error(torch.softmax(z_test / t, -1), y_test, 10)}


def _calibration_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


_SOFTMAX = ("softmax", "log_softmax", "Softmax", "LogSoftmax", "cross_entropy", "nll_loss",
            "CrossEntropyLoss", "NLLLoss", "probabilities", "special")
EX05 = Exercise("05_joint_classification", "The joint softmax, its cross-entropy, and calibration", (
    Part("q1", "joint_probabilities", 4, lambda s, t: torch.softmax(s / t, dim=-1), _joint_cases,
         forbidden=_SOFTMAX,
         hint="subtract each row's maximum before exp so that large scores do not overflow"),
    Part("q2", "joint_cross_entropy", 4, lambda s, y: F.cross_entropy(s, y), _ce_cases,
         forbidden=_SOFTMAX,
         hint="-log P(y|x) = logsumexp(s) - s_y; log(softmax) underflows to log 0 = -inf when the "
              "label's probability is below ~1e-38; average over the batch"),
    Part("q3", "expected_calibration_error", 5, _ece_ref, _ece_cases,
         forbidden=("expected_calibration_error", "reliability_bins", "calibration", "ReliabilityBins"),
         hint="bins (b/M, (b+1)/M], upper edge included (a confidence of 1.0 is in the last bin, 0.5 "
              "with M = 10 in bin 4); ECE = Σ_b (|B_b|/N)·|acc_b - conf_b| over the non-empty bins"),
    Part("q4", "fit_temperature", 4, _fit_temperature, _temperature_cases, atol=0.01, rtol=0.01,
         forbidden=_SOFTMAX,
         hint="minimise the mean of logsumexp(z/T) - z_y/T over T in [0.05, 20] (it is convex in 1/T: "
              "a golden-section or fine grid search on log T works); return a float"),
    Part("q5", "calibration_experiment", 5, calibration_experiment, _calibration_cases, atol=0.03,
         rtol=0.1, case_timeout=30.0,
         hint="follow the protocol exactly; softmax is off limits in this notebook, so use your "
              "joint_probabilities and fit_temperature"),
))
