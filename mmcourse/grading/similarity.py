"""A similarity report over a class's submissions: pairs a human should look at.

Neither nbgrader nor otter-grader offers one. Renaming variables, reformatting, adding comments
or reordering functions does not hide copying here:

1. **Normalise** each submission's graded code (the definitions the grader extracted): Python
   tokens, with comments and layout dropped, every identifier that is not a keyword, a builtin
   or an attribute name replaced by ``V``, and every string by ``S``.
2. **Fingerprint** it (winnowing, as in MOSS: Schleimer, Wilkerson and Aiken, SIGMOD 2003): hash
   every run of ``k`` tokens, keep the minimum hash of every window of ``w`` hashes.
3. **Discount what everyone shares**: fingerprints of the handed-out exercise (the stubs and
   the given code) and, in a class of ten or more, those found in more than half of it (idioms,
   the course's own style) are dropped.
4. **Score** a pair by containment: shared fingerprints over the smaller submission's
   fingerprints; flag pairs above a threshold that share at least ``min_shared`` fingerprints.

A flag is a reason to read two submissions side by side, never a verdict: short exercises admit
few solutions, and students who studied together write alike.
"""

from __future__ import annotations

import builtins
import csv
import hashlib
import io
import keyword
import tokenize
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

K, WINDOW = 10, 6
BUILTINS = frozenset(dir(builtins))
SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENCODING, tokenize.ENDMARKER,
        tokenize.INDENT, tokenize.DEDENT}


def normalise(source: str) -> list[str]:
    """The token sequence that survives renaming, comments and layout."""
    out: list[str] = []
    previous = ""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = []
    for tok in tokens:
        if tok.type in SKIP:
            continue
        if tok.type == tokenize.NAME:
            keep = keyword.iskeyword(tok.string) or tok.string in BUILTINS or previous == "."
            out.append(tok.string if keep else "V")
        elif tok.type == tokenize.STRING:
            out.append("S")
        else:
            out.append(tok.string)
        previous = tok.string
    return out


def fingerprints(tokens: list[str], k: int = K, window: int = WINDOW) -> set[int]:
    """Winnowed hashes of the ``k``-token runs."""
    runs = (" ".join(tokens[i:i + k]).encode() for i in range(len(tokens) - k + 1))
    hashes = [int.from_bytes(hashlib.blake2b(run, digest_size=8).digest(), "big") for run in runs]
    if len(hashes) <= window:
        return set(hashes)
    return {min(hashes[i:i + window]) for i in range(len(hashes) - window + 1)}


@dataclass(frozen=True)
class Pair:
    exercise: str
    a: str
    b: str
    similarity: float
    shared: int


def compare(sources: dict[str, str], starter: str = "", threshold: float = 0.7, min_shared: int = 8,
            exercise: str = "") -> list[Pair]:
    """Pairs of ``sources`` (student -> code) at or above ``threshold``, most similar first."""
    prints = {s: fingerprints(normalise(code)) for s, code in sources.items()}
    common = fingerprints(normalise(starter)) if starter else set()
    if len(prints) >= 10:   # in a small class, what two share is no idiom
        counts: dict[int, int] = {}
        for fp in prints.values():
            for h in fp:
                counts[h] = counts.get(h, 0) + 1
        common |= {h for h, c in counts.items() if c > len(prints) / 2}
    prints = {s: fp - common for s, fp in prints.items()}
    pairs = []
    for a, b in combinations(sorted(prints), 2):
        shared = len(prints[a] & prints[b])
        smaller = min(len(prints[a]), len(prints[b]))
        if smaller and shared >= min_shared and shared / smaller >= threshold:
            pairs.append(Pair(exercise, a, b, round(shared / smaller, 3), shared))
    return sorted(pairs, key=lambda p: (-p.similarity, -p.shared, p.a, p.b))


def write(pairs: list[Pair], out: Path, threshold: float, counts: dict[str, int]) -> list[Path]:
    """``similarity.csv`` (every flagged pair) and ``similarity.md`` (the same, to read)."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "similarity.csv", out / "similarity.md"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["exercise", "student_a", "student_b", "similarity", "shared_fingerprints"])
        w.writerows([p.exercise, p.a, p.b, p.similarity, p.shared] for p in pairs)
    lines = ["# Similarity report", "",
             f"Pairs whose normalised code shares at least {threshold:.0%} of the smaller submission's "
             "fingerprints (after discounting the handed-out code and what most of the class shares). "
             "A flag is a reason to read the two side by side, not a verdict.", "",
             "Submissions compared: " + ", ".join(f"{e}: {n}" for e, n in sorted(counts.items())), ""]
    if pairs:
        lines += ["| exercise | student A | student B | similarity | shared |",
                  "| --- | --- | --- | --- | --- |"]
        lines += [f"| {p.exercise} | {p.a} | {p.b} | {p.similarity:.0%} | {p.shared} |" for p in pairs]
    else:
        lines.append("No pair reached the threshold.")
    md_path.write_text("\n".join(lines) + "\n")
    return [csv_path, md_path]
