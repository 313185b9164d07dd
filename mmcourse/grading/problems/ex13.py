"""Exercise 13 (transformers and VQA): patch embedding from scratch, one cross-attention fusion
step with padded questions, and a word-order experiment (bag of words against ordered words)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from mmcourse.data.relation_task import make_relation_data
from mmcourse.grading.problems.base import Cases, Exercise, Part, randint, randn
from mmcourse.models.patch_embedding import patchify


# -- q1: patchify ------------------------------------------------------------------------------
def _patch_cases(g: torch.Generator, public: bool) -> Cases:
    if public:
        return [(randn(g, 2, 3, 8, 8), 4),
                (randn(g, 1, 1, 6, 9), 3),                     # not square, one channel
                (torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4), 2)]  # channel order
    cases = []
    for _ in range(4):
        p = randint(g, 1, 4)
        b, c = randint(g, 1, 3), randint(g, 1, 4)
        cases.append((randn(g, b, c, p * randint(g, 1, 4), p * randint(g, 1, 4)), p))
    return cases


# -- q2: one cross-attention fusion step -------------------------------------------------------
def cross_attend(words, patches, w_q, w_k, w_v, word_mask):
    """The reference of q2: ``T + softmax((T W_q)(Z W_k)^T / sqrt(d_k)) (Z W_v)`` for real words;
    a padding word keeps its vector and gets all-zero weights."""
    q, k, v = words @ w_q, patches @ w_k, patches @ w_v
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(w_q.shape[1]), dim=-1)
    weights = weights * word_mask[..., None]
    return words + weights @ v, weights


def _cross_cases(g: torch.Generator, public: bool) -> Cases:
    def case(b, length, n, d, dk, mask):
        return (randn(g, b, length, d), randn(g, b, n, d), randn(g, d, dk) / math.sqrt(d),
                randn(g, d, dk) / math.sqrt(d), randn(g, d, d) / math.sqrt(d), mask)

    if public:
        mask = torch.tensor([[True, True, True, False], [True, False, False, False], [False] * 4])
        big = case(1, 2, 3, 4, 4, torch.ones(1, 2, dtype=torch.bool))
        big = (big[0] * 30, big[1] * 30, *big[2:])                           # large scores: stable softmax
        return [case(3, 4, 5, 8, 4, mask), big]
    cases = []
    for _ in range(4):
        b, length, n = randint(g, 1, 4), randint(g, 1, 6), randint(g, 1, 9)
        mask = torch.rand(b, length, generator=g) < 0.7
        mask[0] = False                                                      # a fully padded question
        cases.append(case(b, length, n, 8, randint(g, 2, 8), mask))
    return cases


# -- q3: the word-order experiment -------------------------------------------------------------
def word_order_experiment(seed):
    """The reference of q3 (the protocol the master states)."""
    def features(scene, x, y, ordered):
        if ordered:
            words = torch.cat([nn.functional.one_hot(x, 6), nn.functional.one_hot(y, 6)], dim=1)
        else:
            words = nn.functional.one_hot(x, 6) + nn.functional.one_hot(y, 6)
        return torch.cat([scene, words.float()], dim=1)

    train, test = make_relation_data(800, seed), make_relation_data(400, seed + 1)
    accuracies = []
    for ordered in (False, True):
        torch.manual_seed(seed)
        width = 48 if ordered else 42
        model = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        inputs = features(*train[:3], ordered)
        for _ in range(150):
            opt.zero_grad()
            nn.functional.cross_entropy(model(inputs), train[3]).backward()
            opt.step()
        with torch.no_grad():
            pred = model(features(*test[:3], ordered)).argmax(1)
        accuracies.append((pred == test[3]).float().mean().item())
    return torch.tensor(accuracies)


def _experiment_cases(g: torch.Generator, public: bool) -> Cases:
    return [(0,)] if public else [(randint(g, 1, 10_000),) for _ in range(3)]


EX13 = Exercise("13_transformers_and_vqa", "Patch embedding, cross-attention fusion and word order", (
    Part("q1", "patchify", 3, patchify, _patch_cases,
         forbidden=("unfold", "Unfold", "conv2d", "Conv2d", "PatchEmbedding"),
         hint="reshape to (B, C, H/p, p, W/p, p), permute to (B, H/p, W/p, C, p, p), then flatten; "
              "patches row-major over the grid, channels first inside a patch (as F.unfold)"),
    Part("q2", "cross_attend", 3, cross_attend, _cross_cases,
         forbidden=("scaled_dot_product_attention", "MultiheadAttention", "MultiHeadAttention"),
         hint="softmax over the patches of (T W_q)(Z W_k)^T / sqrt(d_k), d_k = w_q.shape[1]; multiply the "
              "weights of padding words by 0 so they receive no update; return (T + α Z W_v, α)"),
    # an experiment (two small models, ~0.3 s a case on a quiet 2-core CPU; its own time allowance)
    Part("q3", "word_order_experiment", 4, word_order_experiment, _experiment_cases, atol=0.06, rtol=0.0,
         hint="follow the protocol exactly (sizes, seeds, 150 full-batch Adam steps at lr 0.03) and return "
              "torch.tensor([bag-of-words accuracy, ordered accuracy])", case_timeout=30),
))
