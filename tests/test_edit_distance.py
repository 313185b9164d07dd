"""Edit distance and digit error rate, checked against jiwer."""

from __future__ import annotations

import random

import pytest

from mmcourse.metrics import digit_error_rate, edit_distance, edit_operations


def test_counts_of_a_known_pair():
    c = edit_operations("1 2 3 4", "1 3 4 4 5")
    assert (c.errors, c.reference_length) == (3, 4)
    assert edit_distance([], [1, 2]) == 2 and edit_distance([1, 2], []) == 2
    assert edit_distance("4 0 7", "4 0 7") == 0
    assert edit_distance([4, 0, 7], "4 0 7") == 0            # ints and their text are one symbol


def test_matches_jiwer_on_random_digit_strings():
    jiwer = pytest.importorskip("jiwer")
    rng = random.Random(0)
    refs, hyps = [], []
    for _ in range(200):
        ref = [str(rng.randrange(10)) for _ in range(rng.randint(1, 7))]
        hyp = [d for d in ref if rng.random() > 0.2]
        for _ in range(rng.randint(0, 2)):
            hyp.insert(rng.randint(0, len(hyp)), str(rng.randrange(10)))
        hyp = [str(rng.randrange(10)) if rng.random() < 0.1 else d for d in hyp]
        refs.append(" ".join(ref))
        hyps.append(" ".join(hyp))
    assert digit_error_rate(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    out = jiwer.process_words(refs, hyps)
    ours = [edit_operations(r, h) for r, h in zip(refs, hyps)]
    assert sum(o.substitutions for o in ours) + sum(o.deletions for o in ours) + sum(
        o.insertions for o in ours) == out.substitutions + out.deletions + out.insertions


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        digit_error_rate(["1"], [])
    with pytest.raises(ValueError, match="empty"):
        digit_error_rate([""], ["1"])
