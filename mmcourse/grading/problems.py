"""The graded exercises: for each chapter, its parts, points, references and test cases.

A part asks for one function with a stated signature. Its test cases are argument tuples;
``public`` cases (fixed seed, shown by the inline ``check``) and ``hidden`` cases (drawn from a
secret seed at grading time, different shapes and values, edge cases included) are both made
by the part's ``cases(generator, public)`` function, and the expected answers come from the
``reference`` function, which is the package's own implementation, PyTorch or scikit-learn.
``forbidden`` lists the names a solution may not use (calling the library is not implementing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mmcourse import metrics
from mmcourse.grading import references as ref
from mmcourse.models.attention import scaled_dot_product_attention
from mmcourse.models.retrieval import info_nce, retrieve
from mmcourse.models.rnn import ElmanCell, run_cell

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


# ------------------------------------------------------------------------------ 02 convolution
def _conv_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        x = randn(g, 1, 1, 4, 4)
        return [(x, randn(g, 1, 1, 3, 3), None, 1, 0),
                (randn(g, 2, 3, 5, 5), randn(g, 4, 3, 3, 3), randn(g, 4), 1, 0),
                (randn(g, 1, 2, 6, 6), randn(g, 3, 2, 3, 3), randn(g, 3), 2, 1)]
    cases = []
    for i in range(8):
        b, c, o = randint(g, 1, 3), randint(g, 1, 3), randint(g, 1, 4)
        kh, kw = randint(g, 1, 3), randint(g, 1, 4)
        stride = (1, 1, 2, 3, 1, 2, 1, 2)[i]
        padding = (0, 1, 0, 1, 2, 2, 0, 1)[i]
        h, w = randint(g, max(kh, 3), 9), randint(g, max(kw, 3), 8)
        bias = randn(g, o) if i % 2 else None
        cases.append((randn(g, b, c, h, w), randn(g, o, c, kh, kw), bias, stride, padding))
    return cases


def _size_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(28, 3, 1, 0), (28, 3, 1, 1), (28, 3, 2, 1)]
    return [(randint(g, 5, 64), k, s, p) for k, s, p in
            [(1, 1, 0), (5, 1, 2), (4, 2, 1), (3, 3, 0), (7, 2, 3), (2, 2, 0)]]


EX02 = Exercise("02_cnn_for_images_and_spectrograms", "Convolution as unfold + matmul", (
    Part("q1", "conv2d_unfold", 4, lambda x, w, b, s, p: F.conv2d(x, w, b, s, p), _conv_cases,
         forbidden=("conv2d", "conv1d", "conv3d", "Conv2d", "convolution", "_convolution",
                    "conv2d_unfold", "UnfoldConv2d"),
         hint="unfold x into columns (B, C·kh·kw, L), multiply by the weight as a matrix, reshape"),
    Part("q2", "conv_output_size", 1, ref.conv_output_size, _size_cases,
         hint="floor((n + 2p - k) / s) + 1"),
))


# ------------------------------------------------------------------------------ 03 RNN
def _elman_params(g: torch.Generator, f: int, h: int):
    s = 1 / math.sqrt(h)
    return randn(g, h, f) * s, randn(g, h, h) * s, randn(g, h) * s


def _elman(x, h, W, U, b) -> torch.Tensor:
    cell = ElmanCell(W.shape[1], W.shape[0])
    with torch.no_grad():
        cell.W.copy_(W), cell.U.copy_(U), cell.b_x.copy_(b), cell.b_h.zero_()
        return cell(x, h)


def _elman_seq(x, h0, W, U, b):
    cell = ElmanCell(W.shape[1], W.shape[0])
    with torch.no_grad():
        cell.W.copy_(W), cell.U.copy_(U), cell.b_x.copy_(b), cell.b_h.zero_()
        return run_cell(cell, x, h0)


def _step_cases(g: torch.Generator, public: bool) -> Cases:
    shapes = [(1, 2, 3), (4, 5, 2)] if public else [(1, 1, 1), (3, 4, 6), (5, 7, 2), (2, 3, 8),
                                                   (6, 2, 5), (1, 9, 4)]
    cases = []
    for b, f, h in shapes:
        W, U, bias = _elman_params(g, f, h)
        cases.append((randn(g, b, f), randn(g, b, h), W, U, bias))
    if not public:   # large pre-activations: tanh saturates, it must still be tanh
        W, U, bias = _elman_params(g, 3, 4)
        cases.append((randn(g, 2, 3) * 50, randn(g, 2, 4), W, U, bias))
    return cases


def _seq_cases(g: torch.Generator, public: bool) -> Cases:
    shapes = [(2, 3, 2, 4)] if public else [(1, 1, 3, 2), (3, 5, 2, 4), (2, 8, 4, 3), (4, 2, 1, 6),
                                            (1, 12, 3, 3)]
    cases = []
    for b, t, f, h in shapes:
        W, U, bias = _elman_params(g, f, h)
        cases.append((randn(g, b, t, f), randn(g, b, h), W, U, bias))
    return cases


_RNN_FORBIDDEN = ("RNN", "RNNCell", "rnn_tanh", "rnn_tanh_cell", "GRU", "LSTM", "GRUCell",
                  "ElmanCell", "run_cell", "SequenceEncoder")
EX03 = Exercise("03_rnns_for_sequences", "One step of an Elman RNN, then a whole sequence", (
    Part("q1", "rnn_step", 3, _elman, _step_cases, forbidden=_RNN_FORBIDDEN,
         hint="h_t = tanh(x_t W^T + h_{t-1} U^T + b)"),
    Part("q2", "rnn_forward", 2, _elman_seq, _seq_cases, forbidden=_RNN_FORBIDDEN,
         hint="loop over t, stack the states into (B, T, H), return (outputs, h_T)"),
))


# ------------------------------------------------------------------------------ 04 attention
def _attention_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        q, k, v = randn(g, 3, 4), randn(g, 5, 4), randn(g, 5, 2)
        causal = torch.ones(3, 3, dtype=torch.bool).tril()
        lengths = torch.tensor([[True, True, False, False]])
        return [(q, k, v, None),
                (randn(g, 3, 4), randn(g, 3, 4), randn(g, 3, 4), causal),
                (randn(g, 1, 2, 4), randn(g, 1, 4, 4), randn(g, 1, 4, 3), lengths[:, None, :])]
    cases = [(randn(g, 2, 5, 8), randn(g, 2, 7, 8), randn(g, 2, 7, 3), None),
             (randn(g, 2, 3, 4, 6), randn(g, 2, 3, 4, 6), randn(g, 2, 3, 4, 5),
              torch.ones(4, 4, dtype=torch.bool).tril())]
    pad = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]        # (3, 6) key padding
    cases.append((randn(g, 3, 2, 5), randn(g, 3, 6, 5), randn(g, 3, 6, 2), pad[:, None, :]))
    none_allowed = torch.ones(3, 4, dtype=torch.bool)
    none_allowed[1] = False                                                   # a query sees no key
    cases.append((randn(g, 3, 2), randn(g, 4, 2), randn(g, 4, 3), none_allowed))
    cases.append((randn(g, 1, 1, 16) * 4, randn(g, 1, 9, 16) * 4, randn(g, 1, 9, 4), None))
    random_mask = torch.rand(2, 5, 5, generator=g) > 0.4
    random_mask[:, :, 0] = True
    cases.append((randn(g, 2, 5, 3), randn(g, 2, 5, 3), randn(g, 2, 5, 3), random_mask))
    return cases


def _causal_cases(g: torch.Generator, public: bool) -> Cases:
    return [(3,)] if public else [(1,), (2,), (5,), (randint(g, 6, 12),)]


EX04 = Exercise("04_attention", "Masked scaled dot-product attention", (
    Part("q1", "attention", 4, scaled_dot_product_attention, _attention_cases,
         forbidden=("scaled_dot_product_attention", "MultiheadAttention", "MultiHeadAttention",
                    "multi_head_attention_forward"),
         hint="scores = q k^T / sqrt(d_k); forbidden scores get a very negative number before the "
              "softmax and weight 0 after it; a query with no allowed key gets all-zero weights"),
    Part("q2", "causal_mask", 1, lambda n: torch.ones(n, n, dtype=torch.bool).tril(), _causal_cases,
         hint="True on and below the diagonal"),
))


# ------------------------------------------------------------------------------ 05 joint
def _joint_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), 1.0), (randn(g, 2, 10), 2.0)]
    return [(randn(g, 1, 2), 1.0), (randn(g, 6, 10), 1.0), (randn(g, 5, 4) * 3, 0.5),
            (randn(g, 3, 7), 4.0), (randn(g, 4, 5) * 1000, 1.0),   # large scores: stable?
            (torch.full((2, 3), -800.0), 1.0)]


def _ce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 2, 1, 1]))]
    cases = []
    for n, c, scale in [(1, 2, 1), (8, 10, 1), (5, 3, 4), (6, 4, 500), (3, 6, 50)]:
        cases.append((randn(g, n, c) * scale, torch.randint(0, c, (n,), generator=g)))
    return cases


_SOFTMAX = ("softmax", "log_softmax", "Softmax", "LogSoftmax", "cross_entropy", "nll_loss",
            "CrossEntropyLoss", "NLLLoss", "probabilities", "special")
EX05 = Exercise("05_joint_classification", "The joint softmax P(y | x1, x2) and its cross-entropy", (
    Part("q1", "joint_probabilities", 3, lambda s, t: torch.softmax(s / t, dim=-1), _joint_cases,
         forbidden=_SOFTMAX,
         hint="subtract each row's maximum before exp so that large scores do not overflow"),
    Part("q2", "joint_cross_entropy", 2, lambda s, y: F.cross_entropy(s, y), _ce_cases,
         forbidden=_SOFTMAX,
         hint="-log P(y|x) = logsumexp(s) - s_y; average over the batch"),
))


# ------------------------------------------------------------------------------ 06 fusion
def _late_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 2, 3, 4), torch.ones(2, 3, dtype=torch.bool)),
                (randn(g, 2, 2, 3), torch.tensor([[True, False], [True, True]]))]
    cases = []
    for m, b, c in [(3, 5, 4), (2, 6, 10), (4, 3, 2)]:
        present = torch.rand(m, b, generator=g) > 0.35
        cases.append((randn(g, m, b, c), present))
    absent = torch.ones(2, 4, dtype=torch.bool)
    absent[:, 2] = False                                                      # nothing present
    cases.append((randn(g, 2, 4, 3), absent))
    cases.append((randn(g, 1, 3, 5), torch.ones(1, 3, dtype=torch.bool)))
    return cases


def _early_cases(g: torch.Generator, public: bool) -> Cases:
    dims = [([3, 2], 4, 3)] if public else [([5], 2, 4), ([3, 4], 6, 2), ([2, 1, 6], 3, 5),
                                              ([8, 8], 1, 10)]
    cases = []
    for ds, b, c in dims:
        feats = [randn(g, b, d) for d in ds]
        cases.append((feats, randn(g, c, sum(ds)), randn(g, c)))
    return cases


EX06 = Exercise("06_fusion_strategies", "Late and early fusion heads", (
    Part("q1", "late_fusion", 3, ref.late_fusion, _late_cases, forbidden=("LateFusion",),
         hint="average the logits of the present modalities only; divide by max(count, 1)"),
    Part("q2", "early_fusion", 2, ref.early_fusion, _early_cases,
         forbidden=("linear", "Linear", "EarlyFusion", "bilinear"),
         hint="concatenate the features along dim 1, then z W^T + b"),
))


# ------------------------------------------------------------------------------ 07 retrieval
def _retrieve_ref(query, database, theta):
    return retrieve(query, database, theta).indices


def _retrieve_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4), randn(g, 6, 4), 0.0), (randn(g, 3), randn(g, 5, 3), 0.5)]
    cases = [(randn(g, 8), randn(g, 20, 8), 0.2), (randn(g, 8), randn(g, 20, 8) * 7, -0.1),
             (randn(g, 4), randn(g, 10, 4), 0.999),                          # probably empty
             (randn(g, 16), randn(g, 30, 16), -1.0)]                         # everything
    q, db = randn(g, 4), randn(g, 10, 4)
    db[randint(g, 1, 9)] = 2.5 * q + 1e-3 * randn(g, 4)                      # θ near 1, one match
    cases.append((q, db, 0.999))
    q = randn(g, 6)
    near = q[None] + 0.1 * randn(g, 5, 6)
    cases.append((q * 3, torch.cat([near, randn(g, 7, 6)]), 0.9))
    return cases


def _recall_ref(similarity, relevant, k):
    return metrics.recall_at_k(similarity, k, relevant=relevant)[k]


def _recall_cases(g: torch.Generator, public: bool) -> Cases:
    def case(q, d, k, p=0.2):
        rel = torch.rand(q, d, generator=g) < p
        rel[torch.arange(q), torch.randint(0, d, (q,), generator=g)] = True  # >= 1 relevant each
        return (torch.rand(q, d, generator=g), rel, k)

    if public:
        return [case(3, 4, 1), case(4, 6, 2)]
    # not k = |D| nor a single query: there a constant (recall 1.0) would be right
    return [case(5, 8, 1), case(10, 12, 3, 0.1), case(6, 9, 4), case(20, 30, 5, 0.05),
            case(4, 5, 2, 0.0)]


def _nce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(unit(randn(g, 3, 4)), unit(randn(g, 3, 4)), 1.0)]
    cases = [(unit(randn(g, b, d)), unit(randn(g, b, d)), s) for b, d, s in
             [(2, 3, 10.0), (4, 8, 14.3), (8, 16, 1.0), (6, 5, 100.0)]]     # not a batch of 1: loss 0
    x = unit(randn(g, 5, 6))
    cases.append((x, unit(x + 0.05 * randn(g, 5, 6)), 5.0))                   # nearly matched
    return cases


EX07 = Exercise("07_cross_modal_retrieval", "The retrieval set R(q, D), Recall@K and InfoNCE", (
    Part("q1", "retrieval_set", 3, _retrieve_ref, _retrieve_cases,
         forbidden=("retrieve", "top_k", "Retrieved"),
         hint="cosine similarity (normalise both sides), keep sim > theta (strictly), sort by "
              "decreasing similarity; return a LongTensor of database indices"),
    Part("q2", "recall_at_k", 2, _recall_ref, _recall_cases,
         forbidden=("recall_at_k", "ranks", "top_k", "median_rank"),
         hint="a query is a hit when one of its relevant items is among its k most similar"),
    Part("q3", "info_nce", 3, info_nce, _nce_cases, forbidden=("info_nce",),
         hint="Z = scale · I T^T; average the cross-entropy of the rows and of the columns "
              "with the diagonal as targets"),
))


# ------------------------------------------------------------------------------ 08 generation
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


# ------------------------------------------------------------------------------ 09 data quality
def _impute_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([True, False, True, True]))]
    cases = [(randn(g, n, d) + 2, torch.rand(n, generator=g) > p) for n, d, p in
             [(10, 4, 0.3), (6, 1, 0.5), (20, 8, 0.8)]]
    cases.append((randn(g, 5, 3), torch.ones(5, dtype=torch.bool)))
    cases.append((randn(g, 4, 2), torch.zeros(4, dtype=torch.bool)))        # nothing to average
    return cases


def _weight_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(torch.tensor([0, 0, 0, 1, 2, 2]), 3)]
    return [(torch.randint(0, 4, (40,), generator=g), 4),
            (torch.tensor([1] * 9 + [0]), 2),
            (torch.tensor([0, 0, 3, 3, 3, 1]), 5),                          # classes 2, 4 absent
            (torch.randint(0, 10, (200,), generator=g), 10)]


def _wce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 4, 3), torch.tensor([0, 1, 2, 2]), torch.tensor([1.0, 2.0, 0.5]))]
    cases = []
    for n, c in [(6, 3), (10, 5), (1, 2), (12, 4)]:
        cases.append((randn(g, n, c) * 2, torch.randint(0, c, (n,), generator=g),
                      torch.rand(c, generator=g) * 3 + 0.1))
    cases.append((randn(g, 5, 3) * 400, torch.tensor([0, 1, 2, 0, 1]), torch.tensor([1.0, 4.0, 0.5])))
    return cases


EX09 = Exercise("09_data_quality", "A missing modality and an imbalanced label set", (
    Part("q1", "mean_impute", 3, ref.mean_impute, _impute_cases,
         forbidden=("SimpleImputer",),
         hint="average the present rows column by column; put that mean in the absent rows; "
              "zeros if no row is present"),
    Part("q2", "balanced_class_weights", 2, ref.balanced_class_weights, _weight_cases,
         forbidden=("compute_class_weight",),
         hint="w_c = N / (K n_c), K the number of classes that occur, 0 for the others"),
    Part("q3", "weighted_cross_entropy", 2, lambda s, y, w: F.cross_entropy(s, y, weight=w), _wce_cases,
         forbidden=("cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"),
         hint="Σ_i w_{y_i} CE_i / Σ_i w_{y_i}; use logsumexp for stability"),
))


# ------------------------------------------------------------------------------ 10 evaluation
def _f1_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(torch.tensor([[5, 1], [2, 4]]),), (torch.tensor([[3, 0, 1], [0, 2, 2], [1, 0, 5]]),)]
    cases = [(torch.randint(0, 20, (c, c), generator=g),) for c in (2, 4, 7)]
    never = torch.randint(0, 10, (4, 4), generator=g)
    never[:, 1] = 0                                                           # never predicted
    never[1] = 0                                                              # and never true
    cases.append((never,))
    cases.append((torch.diag(torch.tensor([3, 4, 5])),))
    return cases


def _ablation_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 2, 6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))]
    cases = []
    for m, b, c in [(2, 20, 4), (3, 30, 5), (4, 15, 3)]:
        y = torch.randint(0, c, (b,), generator=g)
        logits = randn(g, m, b, c)
        logits[0, torch.arange(b), y] += 2.0                                  # one informative modality
        cases.append((logits, y))
    return cases


EX10 = Exercise("10_evaluation_and_interpretability", "Macro-F1 and a modality-ablation study", (
    Part("q1", "macro_f1", 3, ref.macro_f1, _f1_cases,
         forbidden=("f1_score", "precision_recall_f1", "precision_recall_fscore_support",
                    "classification_report"),
         hint="per class: TP on the diagonal, FP = column sum - TP, FN = row sum - TP; "
              "F1_c = 2TP / (2TP + FP + FN), 0 when that is 0/0; average over all C classes"),
    Part("q2", "modality_ablation", 2, ref.modality_ablation, _ablation_cases,
         forbidden=("modality_ablation",),
         hint="accuracy of argmax(mean over all modalities) minus that without modality m"),
))


EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in
                                  (EX02, EX03, EX04, EX05, EX06, EX07, EX08, EX09, EX10)}


def get_exercise(name: str) -> Exercise:
    """The exercise called ``name`` (its file stem, e.g. ``"04_attention"``, or its number ``"04"``)."""
    if name in EXERCISES:
        return EXERCISES[name]
    matches = [ex for key, ex in EXERCISES.items() if key.split("_")[0] == name]
    if len(matches) == 1:
        return matches[0]
    raise KeyError(f"no exercise {name!r}; the exercises are {sorted(EXERCISES)}")


PUBLIC_SEED = 0


def public_cases(part: Part) -> Cases:
    g = torch.Generator().manual_seed(PUBLIC_SEED)
    return part.cases(g, True)


def hidden_cases(part: Part, seed: int) -> Cases:
    g = torch.Generator().manual_seed(seed)
    return part.cases(g, False)
