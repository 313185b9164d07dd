"""Edit distance and the digit (word) error rate of recognised strings.

The **edit distance** between a reference ``r_1..r_N`` and a hypothesis ``h_1..h_M`` is the fewest
substitutions ``S``, deletions ``D`` and insertions ``I`` that turn one into the other
(Levenshtein), by dynamic programming over the prefixes:

    E[i, 0] = i,   E[0, j] = j
    E[i, j] = min(E[i-1, j] + 1, E[i, j-1] + 1, E[i-1, j-1] + [r_i ≠ h_j])

Symbols compare by their text, so ``[4, 0, 7]``, ``["4", "0", "7"]`` and ``"4 0 7"`` are the same
string. The **error rate** of a corpus is ``Σ (S + D + I) / Σ N`` -- the total edits over the total
reference length (not the mean of per-utterance rates), as ``jiwer.wer`` computes it on
space-separated words. For digit strings it is the *digit error rate* (DER); it can exceed 1
when a recogniser inserts many symbols.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EditCounts", "digit_error_rate", "edit_distance", "edit_operations"]


@dataclass(frozen=True)
class EditCounts:
    """Substitutions, deletions, insertions and the reference length of one or more strings."""

    substitutions: int
    deletions: int
    insertions: int
    reference_length: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        if self.reference_length == 0:
            raise ValueError("the error rate is undefined for an empty reference")
        return self.errors / self.reference_length


def _symbols(seq, name: str) -> list:
    if isinstance(seq, str):
        return seq.split()
    if hasattr(seq, "tolist"):
        seq = seq.tolist()
    try:
        return [str(x) for x in seq]              # 3 and "3" are the same digit
    except TypeError:
        raise TypeError(f"{name} must be a sequence of symbols or a space-separated string, "
                        f"got {type(seq).__name__}") from None


def edit_operations(reference, hypothesis) -> EditCounts:
    """Levenshtein alignment of two sequences (or space-separated strings): S, D, I counts.

    Among the alignments of least cost, the back-trace prefers a match/substitution, then a
    deletion, then an insertion (the total ``S + D + I`` does not depend on the choice).
    """
    r, h = _symbols(reference, "reference"), _symbols(hypothesis, "hypothesis")
    n, m = len(r), len(h)
    e = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        e[i][0] = i
    for j in range(m + 1):
        e[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            e[i][j] = min(e[i - 1][j] + 1, e[i][j - 1] + 1, e[i - 1][j - 1] + (r[i - 1] != h[j - 1]))
    s = d = ins = 0
    i, j = n, m
    while i or j:
        if i and j and e[i][j] == e[i - 1][j - 1] + (r[i - 1] != h[j - 1]):
            s += r[i - 1] != h[j - 1]
            i, j = i - 1, j - 1
        elif i and e[i][j] == e[i - 1][j] + 1:
            d, i = d + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return EditCounts(int(s), d, ins, n)


def edit_distance(reference, hypothesis) -> int:
    """The Levenshtein distance ``E[N, M]``: the fewest edits from reference to hypothesis."""
    return edit_operations(reference, hypothesis).errors


def digit_error_rate(references, hypotheses) -> float:
    """Corpus error rate ``Σ (S + D + I) / Σ N`` over paired references and hypotheses (each a
    sequence of symbols or a space-separated string)."""
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"need one hypothesis per reference, got {len(references)} references and "
                         f"{len(hypotheses)} hypotheses")
    counts = [edit_operations(r, h) for r, h in zip(references, hypotheses)]
    total = sum(c.reference_length for c in counts)
    if total == 0:
        raise ValueError("the error rate is undefined when every reference is empty")
    return sum(c.errors for c in counts) / total
