"""Exercise 04 (attention): masked scaled dot-product attention, multi-head attention, and an
experiment (attention pooling against mean pooling on sequences where one flagged step decides)."""


from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn, single_threaded
from mmcourse.models.attention import MultiHeadAttention, scaled_dot_product_attention


def _attention_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        q, k, v = randn(g, 3, 4), randn(g, 5, 4), randn(g, 5, 2)
        causal = torch.ones(3, 3, dtype=torch.bool).tril()
        lengths = torch.tensor([[True, True, False, False]])
        blind = torch.ones(3, 4, dtype=torch.bool)
        blind[1] = False                                                      # query 1 sees no key
        return [(q, k, v, None),
                (randn(g, 3, 4), randn(g, 3, 4), randn(g, 3, 4), causal),
                (randn(g, 1, 2, 4), randn(g, 1, 4, 4), randn(g, 1, 4, 3), lengths[:, None, :]),
                (randn(g, 3, 2), randn(g, 4, 2), randn(g, 4, 3), blind),     # -inf -> NaN here
                (randn(g, 2, 16) * 30, randn(g, 6, 16) * 30, randn(g, 6, 2), None)]   # scores ~ 1e3
    cases = [(randn(g, 2, 5, 8), randn(g, 2, 7, 8), randn(g, 2, 7, 3), None),
             (randn(g, 2, 3, 4, 6), randn(g, 2, 3, 4, 6), randn(g, 2, 3, 4, 5),
              torch.ones(4, 4, dtype=torch.bool).tril())]
    pad = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]        # (3, 6) key padding
    cases.append((randn(g, 3, 2, 5), randn(g, 3, 6, 5), randn(g, 3, 6, 2), pad[:, None, :]))
    none_allowed = torch.ones(2, 3, 4, dtype=torch.bool)
    none_allowed[1, 0] = False
    none_allowed[0, 2] = False
    cases.append((randn(g, 2, 3, 2), randn(g, 2, 4, 2), randn(g, 2, 4, 3), none_allowed))
    cases.append((randn(g, 1, 1, 16) * 40, randn(g, 1, 9, 16) * 40, randn(g, 1, 9, 4), None))
    random_mask = torch.rand(2, 5, 5, generator=g) > 0.4
    random_mask[:, :, 0] = True
    cases.append((randn(g, 2, 5, 3), randn(g, 2, 5, 3), randn(g, 2, 5, 3), random_mask))
    return cases


def _mha_ref(x, W_q, b_q, W_k, b_k, W_v, b_v, W_o, b_o, heads, mask=None):
    """The package's ``MultiHeadAttention`` with these weights; its output only."""
    mha = MultiHeadAttention(x.shape[-1], heads)
    with torch.no_grad():
        for lin, w, b in ((mha.q_proj, W_q, b_q), (mha.k_proj, W_k, b_k), (mha.v_proj, W_v, b_v),
                          (mha.out_proj, W_o, b_o)):
            lin.weight.copy_(w), lin.bias.copy_(b)
        return mha(x, mask=mask)[0]


def _mha_cases(g: torch.Generator, public: bool) -> Cases:
    def case(b, length, dim, heads, lengths=None):
        s = 1 / math.sqrt(dim)
        weights = [t for _ in range(4) for t in (randn(g, dim, dim) * s, randn(g, dim) * 0.1)]
        mask = None if lengths is None else torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
        return (randn(g, b, length, dim), *weights, heads, mask)
    if public:
        return [case(1, 3, 4, 1), case(2, 5, 6, 2), case(2, 4, 8, 4, [4, 2])]    # L != head_dim
    return [case(1, 1, 4, 2), case(3, 6, 8, 2), case(2, 7, 6, 3, [7, 3]), case(4, 3, 12, 4),
            case(2, 9, 8, 8, [1, 9])]


def make_flag_task(n: int, seed: int, length: int = 10, dim: int = 8):
    """``n`` sequences ``(n, length, dim)`` of noise; in each, one random step is *flagged*
    (feature 0 set to 3) and the label is whether that step's feature 1 is positive."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, dim, generator=g)
    x[:, :, 0] = 0.0
    where = torch.randint(0, length, (n,), generator=g)
    x[torch.arange(n), where, 0] = 3.0
    labels = (x[torch.arange(n), where, 1] > 0).long()
    return x, labels


@single_threaded
def pooling_experiment(seed: int) -> dict:
    """The reference of q3 (the protocol the master states)."""
    x, y = make_flag_task(256, seed)
    x_test, y_test = make_flag_task(512, seed + 1)
    torch.manual_seed(seed)
    mean_head = nn.Linear(8, 2)
    torch.manual_seed(seed)
    query, mha, head = nn.Parameter(torch.randn(1, 1, 8)), MultiHeadAttention(8, 1), nn.Linear(8, 2)

    def attend(z):
        return head(mha(query.expand(len(z), 1, 8), context=z)[0][:, 0])

    out = {}
    for name, forward, params in (("mean", lambda z: mean_head(z.mean(1)), list(mean_head.parameters())),
                                  ("attention", attend, [query, *mha.parameters(), *head.parameters()])):
        opt = torch.optim.Adam(params, lr=0.02)
        for _ in range(80):
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            out[name] = float((forward(x_test).argmax(1) == y_test).float().mean())
    return out


def _pool_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 2**30),) for _ in range(3)]


_ATTENTION = ("scaled_dot_product_attention", "MultiheadAttention", "MultiHeadAttention",
              "multi_head_attention_forward", "TransformerBlock")
EX04 = Exercise("04_attention", "Masked attention, multi-head attention, attention pooling", (
    Part("q1", "attention", 6, scaled_dot_product_attention, _attention_cases, forbidden=_ATTENTION,
         hint="scores = q k^T / sqrt(d_k); subtract each row's max before exp (scores can be ~1000); "
              "forbidden keys get weight exactly 0, and a query with no allowed key gets all-zero "
              "weights and output (a -inf fill gives 0/0 = NaN there)"),
    Part("q2", "multi_head_attention", 6, _mha_ref, _mha_cases, forbidden=_ATTENTION,
         hint="project with x W^T + b, split the last dim into (heads, d) and move heads before the "
              "length: (B, L, D) -> (B, heads, L, D/heads); attend per head (your q1), put the heads "
              "back side by side, then W_o"),
    Part("q3", "pooling_experiment", 5, pooling_experiment, _pool_cases, atol=0.06, rtol=0.0,
         case_timeout=30.0,
         hint="follow the protocol exactly and return {'mean': accuracy, 'attention': accuracy}"),
))
