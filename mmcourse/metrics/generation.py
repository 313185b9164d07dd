"""Metrics for generated text: n-gram overlap of hypotheses with reference captions.

For a hypothesis ``h`` with references ``r_1 .. r_m`` and ``c_x(g)`` the count of n-gram ``g``
in ``x``, BLEU (Papineni et al., 2002) pools clipped n-gram precisions over the corpus::

    p_n = Σ_h Σ_g min(c_h(g), max_r c_r(g)) / Σ_h Σ_g c_h(g)
    BLEU-N = BP · exp(Σ_{n=1..N} (1/N) log p_n),   BP = 1 if c > r else exp(1 − r/c)

and CIDEr-D (Vedantam et al., 2015) averages, over n = 1..4 and the references, the clipped
cosine similarity of TF-IDF n-gram vectors with a Gaussian penalty on length differences (see
``cider_d``). Captions are whitespace-split strings or token lists.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from mmcourse.metrics._inputs import _positive_int, _safe_div


def _tokens(sentence, name: str) -> list[str]:
    """A sentence as a token list: a string is split on whitespace."""
    if isinstance(sentence, str):
        return sentence.split()
    if isinstance(sentence, Sequence) and all(isinstance(t, str) for t in sentence):
        return list(sentence)
    raise TypeError(f"{name} must be a string or a list of string tokens, got {sentence!r}")


def _corpus(references, hypotheses) -> tuple[list[list[list[str]]], list[list[str]]]:
    """Tokenized ``(references, hypotheses)``; ``references[i]`` is a list of references for
    hypothesis ``i`` (a single string is taken as one reference)."""
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError("hypotheses must be a list with one caption (string or tokens) each")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError("references must be a list with a list of reference captions each")
    if len(hypotheses) == 0:
        raise ValueError("hypotheses is empty; expected at least one caption")
    if len(references) != len(hypotheses):
        raise ValueError(
            "references and hypotheses must have the same length (one list of references "
            f"per hypothesis), got {len(references)} and {len(hypotheses)}"
        )
    hyps = [_tokens(h, f"hypotheses[{i}]") for i, h in enumerate(hypotheses)]
    refs = []
    for i, rs in enumerate(references):
        if isinstance(rs, str):
            rs = [rs]
        if not isinstance(rs, Sequence) or len(rs) == 0:
            raise ValueError(f"references[{i}] must be a non-empty list of reference captions")
        refs.append([_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(rs)])
    return refs, hyps


def _ngrams(tokens: list[str], n: int) -> Counter:
    """Counts of the n-grams (tuples of ``n`` tokens) in ``tokens``."""
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(references, hypotheses, max_n: int = 4, smooth: bool = False) -> dict[str, float]:
    """Corpus-level BLEU-1 .. BLEU-``max_n`` (Papineni et al., 2002).

    Clipped n-gram precision, pooled over the corpus (each n-gram of a hypothesis counts at
    most as often as it appears in any single one of its references)::

        p_n = Σ_h Σ_g min(c_h(g), max_r c_r(g)) / Σ_h Σ_g c_h(g)

    brevity penalty with ``c`` the total hypothesis length and ``r`` the sum over hypotheses
    of the reference length closest to the hypothesis length (a tie goes to the shorter)::

        BP = 1 if c > r else exp(1 − r/c)

    and ``BLEU-N = BP · exp(Σ_{n=1..N} (1/N) log p_n)`` (0 as soon as one ``p_n`` is 0).
    ``smooth=True`` adds one to the numerator and denominator of ``p_n`` for ``n >= 2``
    (Lin & Och 2004; NLTK's ``method2``), so short corpora do not score 0.

    ``hypotheses[i]`` is a string (split on whitespace) or a token list; ``references[i]`` is a
    *list* of references for it, each a string or a token list. Returns
    ``{"bleu1": ..., ..., f"bleu{max_n}": ...}``.
    """
    max_n = _positive_int(max_n, "max_n")
    refs, hyps = _corpus(references, hypotheses)
    matched = np.zeros(max_n)
    total = np.zeros(max_n)
    hyp_len = ref_len = 0
    for rs, h in zip(refs, hyps, strict=True):
        hyp_len += len(h)
        # closest reference length; min over (distance, length) sends ties to the shorter
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(h, n)
            max_ref = Counter()
            for r in rs:
                max_ref |= _ngrams(r, n)  # elementwise max of counts
            matched[n - 1] += sum(min(c, max_ref[g]) for g, c in counts.items())
            total[n - 1] += sum(counts.values())
    if smooth:
        matched[1:] += 1
        total[1:] += 1
    if hyp_len == 0:
        return {f"bleu{n}": 0.0 for n in range(1, max_n + 1)}
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    precisions = _safe_div(matched, total)
    scores = {}
    for n in range(1, max_n + 1):
        p = precisions[:n]
        scores[f"bleu{n}"] = 0.0 if np.any(p == 0) else float(bp * np.exp(np.mean(np.log(p))))
    return scores


def cider_d(references, hypotheses, sigma: float = 6.0, *, per_caption: bool = False):
    """CIDEr-D (Vedantam et al., 2015), as computed by the coco-caption toolkit.

    For each n = 1..4, a caption ``s`` is the TF-IDF vector ``g^n(s)`` over its n-grams ``ω``::

        g^n_ω(s) = tf_ω(s) · (log |I| − log max(1, df(ω)))

    where ``tf`` is the raw count, ``|I|`` the number of images (hypotheses) and ``df(ω)`` the
    number of images whose *references* contain ``ω``. For hypothesis ``c`` with references
    ``s_1 .. s_m``::

        CIDEr-D_n = (10/m) Σ_j  e^{−(l_c − l_j)²/(2σ²)} ·
                    Σ_ω min(g^n_ω(c), g^n_ω(s_j)) g^n_ω(s_j) / (‖g^n(c)‖ ‖g^n(s_j)‖)
        CIDEr-D   = (1/4) Σ_n CIDEr-D_n

    with ``l`` caption lengths in words and a term 0 when a norm is 0. The clipping
    (``min``) stops repeated words from gaming the score, the Gaussian penalty punishes
    length mismatch. Each score is at most 10; an n-gram order that no caption of length
    < n can have contributes 0, so a caption of fewer than 4 words scores below 10 even when
    it equals its reference. The IDF is a corpus statistic: a corpus of a single image gives
    every score 0. Tokens are whitespace-split strings or token lists, as for ``bleu``.

    Returns the corpus score (the mean over hypotheses), or ``(score, per_caption_scores)``
    with ``per_caption=True``.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    refs, hyps = _corpus(references, hypotheses)
    orders = range(1, 5)
    ref_counts = [[{n: _ngrams(r, n) for n in orders} for r in rs] for rs in refs]
    df: Counter = Counter()
    for per_image in ref_counts:
        df.update({g for counts in per_image for n in orders for g in counts[n]})
    log_images = math.log(len(hyps))

    def tfidf(counts: Counter) -> tuple[dict, float]:
        vec = {g: tf * (log_images - math.log(max(1, df[g]))) for g, tf in counts.items()}
        return vec, math.sqrt(sum(v * v for v in vec.values()))

    scores = np.zeros(len(hyps))
    for i, (h, rs) in enumerate(zip(hyps, refs, strict=True)):
        total = 0.0
        for n in orders:
            vec_c, norm_c = tfidf(_ngrams(h, n))
            for r, counts in zip(rs, ref_counts[i], strict=True):
                vec_r, norm_r = tfidf(counts[n])
                if norm_c == 0 or norm_r == 0:
                    continue
                dot = sum(min(v, vec_r.get(g, 0.0)) * vec_r.get(g, 0.0) for g, v in vec_c.items())
                penalty = math.exp(-((len(h) - len(r)) ** 2) / (2 * sigma**2))
                total += penalty * dot / (norm_c * norm_r)
        scores[i] = 10.0 * total / (len(orders) * len(rs))
    corpus = float(scores.mean())
    return (corpus, scores) if per_caption else corpus
