"""Text hints for AV-Digits: short phrases that say *something* about the digit, never all.

A hint is built from clues; each clue names a set of digits that contains the true one:

    parity      "an even number"            {0, 2, 4, 6, 8}
    range       "greater than four"         {5, 6, 7, 8, 9}
                "between two and six"       {2, ..., 6}
    negation    "not three"                 every digit but 3
    multiples   "a multiple of three"       {0, 3, 6, 9}
    primes      "a prime number"            {2, 3, 5, 7}

A hint with ``k`` clues joins them with "and"; the digits it allows are the intersection
``S = S_1 ∩ ... ∩ S_k``. Guessing uniformly in ``S`` is right with probability ``E[1/|S|]``
(about 0.18 with one clue, 0.32 with two); a trained reader does somewhat better, because how
often a clue is drawn depends on the digit (an even digit has more "greater than" clues than
"less than" ones, say) -- but the text stays ambiguous. ``k = 0`` gives the uninformative
"a digit".
"""

from __future__ import annotations

import numpy as np

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS = frozenset(range(10))
PRIMES = frozenset({2, 3, 5, 7})
THIRDS = frozenset({0, 3, 6, 9})


def _clue_options(label: int) -> list[tuple[str, str, frozenset]]:
    """Every clue true of ``label``: (kind, phrase, digits the phrase allows)."""
    options = [("parity", "an even number" if label % 2 == 0 else "an odd number",
                frozenset(d for d in DIGITS if d % 2 == label % 2))]
    options += [("greater", f"greater than {WORDS[k]}", frozenset(range(k + 1, 10)))
                for k in range(0, min(label, 8))]
    options += [("less", f"less than {WORDS[k]}", frozenset(range(0, k)))
                for k in range(max(label + 1, 2), 10)]
    width = 3 + label % 2  # windows of 4 or 5 digits
    options += [("between", f"between {WORDS[lo]} and {WORDS[lo + width]}",
                 frozenset(range(lo, lo + width + 1)))
                for lo in range(max(0, label - width), label + 1) if lo + width <= 9]
    options += [("not", f"not {WORDS[other]}", DIGITS - {other})
                for other in sorted(DIGITS - {label})]
    options.append(("multiple", "a multiple of three", THIRDS) if label in THIRDS
                   else ("multiple", "not a multiple of three", DIGITS - THIRDS))
    options.append(("prime", "a prime number", PRIMES) if label in PRIMES
                   else ("prime", "not a prime number", DIGITS - PRIMES))
    return options


CLUE_KINDS = ("parity", "greater", "less", "between", "not", "multiple", "prime")


def make_hint(label: int, n_clues: int, rng: np.random.Generator) -> tuple[str, frozenset]:
    """A hint of ``n_clues`` clues of distinct kinds about ``label``, and the digits it allows.

    The kinds are drawn uniformly from those that have a clue true of ``label``, then one clue
    of each kind uniformly; the clauses appear in the fixed order of ``CLUE_KINDS``.
    """
    if isinstance(label, bool) or int(label) != label or label not in DIGITS:
        raise ValueError(f"label must be a digit 0..9, got {label!r}")
    if not 0 <= n_clues <= 3:
        raise ValueError(f"n_clues must be 0, 1, 2 or 3, got {n_clues}")
    if n_clues == 0:
        return "a digit", DIGITS
    by_kind: dict[str, list[tuple[str, frozenset]]] = {}
    for kind, phrase, digits in _clue_options(int(label)):
        by_kind.setdefault(kind, []).append((phrase, digits))
    kinds = [k for k in CLUE_KINDS if k in by_kind]
    chosen = sorted(rng.choice(len(kinds), size=n_clues, replace=False))
    phrases, allowed = [], DIGITS
    for k in chosen:
        clues = by_kind[kinds[k]]
        phrase, digits = clues[rng.integers(len(clues))]
        phrases.append(phrase)
        allowed = allowed & digits
    return " and ".join(phrases), allowed


def hint_vocabulary() -> list[str]:
    """Every word a hint can contain (fixed by the grammar, not by the sampled data)."""
    words = {"a", "digit", "and"}
    for label in DIGITS:
        for _, phrase, _ in _clue_options(label):
            words.update(phrase.split())
    return sorted(words)


def max_hint_words(n_clues: int) -> int:
    """The longest hint with ``n_clues`` clues, in words (for padding)."""
    longest = sorted((len(p.split()) for d in DIGITS for _, p, _ in _clue_options(d)), reverse=True)
    return max(2, sum(longest[:n_clues]) + max(0, n_clues - 1))
