"""Exercise 07 (retrieval): the retrieval set, Recall@K (ties), symmetric InfoNCE, and an
experiment training a linear dual encoder with InfoNCE and measuring Recall@K both ways."""


from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse import metrics
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded, unit
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
        tied = torch.tensor([[0.9, 0.9, 0.1], [0.5, 0.7, 0.7], [0.2, 0.2, 0.2]])   # exact ties
        rel = torch.tensor([[False, True, False], [False, True, False], [True, False, False]])
        return [case(3, 4, 1), case(4, 6, 2), (tied, rel, 1), (tied, rel, 2)]
    # not k = |D| nor a single query: there a constant (recall 1.0) would be right
    return [case(5, 8, 1), case(10, 12, 3, 0.1), case(6, 9, 4), case(20, 30, 5, 0.05),
            case(4, 5, 2, 0.0)]


def _nce_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        x = unit(randn(g, 4, 3))
        return [(unit(randn(g, 3, 4)), unit(randn(g, 3, 4)), 1.0),
                (x, unit(x[[1, 0, 2, 3]] + 0.3 * randn(g, 4, 3)), 10.0)]   # rows and columns differ
    cases = [(unit(randn(g, b, d)), unit(randn(g, b, d)), s) for b, d, s in
             [(2, 3, 10.0), (4, 8, 14.3), (8, 16, 1.0), (6, 5, 100.0)]]     # not a batch of 1: loss 0
    x = unit(randn(g, 5, 6))
    cases.append((x, unit(x + 0.05 * randn(g, 5, 6)), 5.0))                   # nearly matched
    return cases


def make_pairs(n: int, seed: int, noise: float = 1.0):
    """``n`` matching (image, text) feature pairs: a shared latent ``z ~ N(0, I_8)`` seen through
    two fixed linear maps (16 image and 12 text features) plus noise. Returns ``(images, texts)``."""
    g = torch.Generator().manual_seed(seed)
    to_image = torch.randn(8, 16, generator=torch.Generator().manual_seed(1234))
    to_text = torch.randn(8, 12, generator=torch.Generator().manual_seed(4321))
    z = torch.randn(n, 8, generator=g)
    return (z @ to_image + noise * torch.randn(n, 16, generator=g),
            z @ to_text + noise * torch.randn(n, 12, generator=g))


@single_threaded
def retrieval_experiment(seed: int) -> dict:
    """The reference of q4 (the protocol the master states)."""
    images, texts = make_pairs(512, seed)
    test_images, test_texts = make_pairs(500, seed + 1)
    torch.manual_seed(seed)
    f_image, f_text = nn.Linear(16, 8), nn.Linear(12, 8)
    opt = torch.optim.Adam([*f_image.parameters(), *f_text.parameters()], lr=0.01)
    for _ in range(80):
        loss = info_nce(F.normalize(f_image(images), dim=-1), F.normalize(f_text(texts), dim=-1), 10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        sim = F.normalize(f_image(test_images), dim=-1) @ F.normalize(f_text(test_texts), dim=-1).T
    i2t, t2i = metrics.recall_at_k(sim, (1, 5)), metrics.recall_at_k(sim.T, (1, 5))
    return {"i2t_r1": i2t[1], "i2t_r5": i2t[5], "t2i_r1": t2i[1], "t2i_r5": t2i[5]}


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


EX07 = Exercise("07_cross_modal_retrieval", "Retrieval sets, Recall@K, InfoNCE, and a dual encoder", (
    Part("q1", "retrieval_set", 4, _retrieve_ref, _retrieve_cases,
         forbidden=("retrieve", "top_k", "Retrieved"),
         hint="cosine similarity (normalise both sides), keep sim > theta (strictly), sort by "
              "decreasing similarity; return a LongTensor of database indices"),
    Part("q2", "recall_at_k", 4, _recall_ref, _recall_cases,
         forbidden=("recall_at_k", "ranks", "top_k", "median_rank"),
         hint="rank of query i = 1 + #{irrelevant j : S_ij >= its best relevant score}: an irrelevant "
              "item *tied* with the best relevant one counts as ranked above it (pessimistic)"),
    Part("q3", "info_nce", 5, info_nce, _nce_cases, forbidden=("info_nce",),
         hint="Z = scale · I T^T; average the cross-entropy of the rows and of the columns "
              "with the diagonal as targets (both directions: image->text and text->image)"),
    Part("q4", "retrieval_experiment", 6, retrieval_experiment, _experiment_cases, atol=0.04, rtol=0.0,
         case_timeout=30.0,
         hint="follow the protocol exactly; R@K from mmcourse.metrics.recall_at_k(sim, (1, 5)) and "
              "recall_at_k(sim.T, (1, 5)) for the other direction"),
))
