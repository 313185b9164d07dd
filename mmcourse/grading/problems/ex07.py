"""Exercise 07 (retrieval): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse import metrics
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, unit
from mmcourse.models.retrieval import info_nce, retrieve


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
