"""Exercise 04 (attention): its parts, references and public / hidden test cases."""


from __future__ import annotations

import torch

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn
from mmcourse.models.attention import scaled_dot_product_attention


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
