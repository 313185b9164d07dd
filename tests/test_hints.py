import numpy as np
import pytest

from mmcourse.data.hints import DIGITS, hint_vocabulary, make_hint, max_hint_words


@pytest.mark.parametrize("clues", [0, 1, 2, 3])
def test_hints_are_true_and_fit_the_vocabulary(clues):
    rng = np.random.default_rng(0)
    vocab = set(hint_vocabulary())
    for label in list(DIGITS) * 30:
        text, allowed = make_hint(label, clues, rng)
        assert label in allowed  # a hint never lies
        assert set(text.split()) <= vocab
        assert len(text.split()) <= max_hint_words(clues)


def test_more_clues_means_fewer_candidates():
    rng = np.random.default_rng(1)
    mean_size = [np.mean([len(make_hint(d, k, rng)[1]) for d in list(DIGITS) * 50])
                 for k in range(4)]
    assert mean_size[0] == 10
    assert mean_size[0] > mean_size[1] > mean_size[2] > mean_size[3]
    # one clue leaves the text genuinely ambiguous: several digits remain on average
    assert mean_size[1] > 4


def test_hint_sets_match_their_words():
    rng = np.random.default_rng(2)
    examples = {make_hint(d, 1, rng) for d in list(DIGITS) * 40}
    meaning = dict(examples)
    assert meaning["an even number"] == {0, 2, 4, 6, 8}
    assert meaning["not three"] == DIGITS - {3}
    assert meaning["greater than six"] == {7, 8, 9}
    assert meaning["a prime number"] == {2, 3, 5, 7}


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="digit 0..9"):
        make_hint(10, 1, rng)
    with pytest.raises(ValueError, match="n_clues must be 0, 1, 2 or 3"):
        make_hint(3, 4, rng)
