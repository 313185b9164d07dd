"""The small synthetic tasks the exercises' experiments train on (``mmcourse.data``: bars,
flag_task, latent_pairs, bigram_corpus, relation_task): shapes and dtypes, the same data for the
same seed, and the property each experiment relies on."""

from __future__ import annotations

import pytest
import torch

from mmcourse.data.bars import make_bars
from mmcourse.data.bigram_corpus import make_corpus, source_probabilities
from mmcourse.data.flag_task import make_flag_task
from mmcourse.data.latent_pairs import make_pairs
from mmcourse.data.relation_task import make_relation_data


# ------------------------------------------------------------------------------ bars
def test_bars_shapes_dtypes_and_seeds():
    x, y = make_bars(64, 3)
    assert x.shape == (64, 1, 12, 12) and x.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64 and set(y.tolist()) == {0, 1}
    x2, y2 = make_bars(64, 3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(make_bars(64, 4)[0], x)
    assert make_bars(5, 0, size=15)[0].shape == (5, 1, 15, 15)


@pytest.mark.parametrize("anywhere", [False, True])
def test_a_bar_is_four_pixels_in_a_row_or_a_column_as_the_label_says(anywhere):
    x, y = make_bars(200, 0, anywhere=anywhere, noise=0.0)
    for image, label in zip(x[:, 0], y):
        rows, cols = (image > 0).nonzero(as_tuple=True)
        assert len(rows) == 4 and torch.all(image[rows, cols] == 2.0)
        assert len(set((cols if label == 0 else rows).tolist())) == 4      # along the bar
        assert len(set((rows if label == 0 else cols).tolist())) == 1      # across it


def test_training_bars_stay_in_the_left_third_and_test_bars_go_everywhere():
    left = make_bars(500, 1, anywhere=False, noise=0.0)[0][:, 0]
    anywhere = make_bars(500, 1, anywhere=True, noise=0.0)[0][:, 0]
    assert left[:, :, 4:].abs().sum() == 0                  # 12 // 3 = 4 columns
    lit = (anywhere > 0).any(0)                             # (12, 12): ever part of a bar
    assert lit[:, 4:11].any(0).all()                        # every column right of the third too
    assert not lit[-1].any() and not lit[:, -1].any()       # the first pixel is in 0 .. size - 5


# ------------------------------------------------------------------------------ flag task
def test_flag_task_shapes_dtypes_and_seeds():
    x, y = make_flag_task(50, 2)
    assert x.shape == (50, 10, 8) and x.dtype == torch.float32
    assert y.shape == (50,) and y.dtype == torch.int64
    assert torch.equal(make_flag_task(50, 2)[0], x) and not torch.equal(make_flag_task(50, 3)[0], x)
    assert make_flag_task(3, 0, length=5, dim=4)[0].shape == (3, 5, 4)


def test_one_flagged_step_decides_the_label():
    x, y = make_flag_task(400, 0)
    flags = x[:, :, 0]
    assert torch.all((flags == 3.0).sum(1) == 1) and torch.all((flags == 0.0).sum(1) == 9)
    where = flags.argmax(1)
    assert torch.equal(y, (x[torch.arange(400), where, 1] > 0).long())
    assert 0.4 < y.float().mean() < 0.6
    # the flag's position varies, so no fixed step carries the label
    assert len(set(where.tolist())) == 10


# ------------------------------------------------------------------------------ latent pairs
def test_latent_pairs_shapes_dtypes_and_seeds():
    images, texts = make_pairs(30, 5)
    assert images.shape == (30, 16) and texts.shape == (30, 12)
    assert images.dtype == texts.dtype == torch.float32
    assert torch.equal(make_pairs(30, 5)[1], texts) and not torch.equal(make_pairs(30, 6)[1], texts)


def test_pairs_share_a_latent_through_maps_fixed_across_seeds():
    # without noise, every image (and every text) of any seed lies in the same 8-dim subspace
    a, b = make_pairs(40, 0, noise=0.0), make_pairs(40, 1, noise=0.0)
    assert torch.linalg.matrix_rank(torch.cat([a[0], b[0]]), rtol=1e-4) == 8
    assert torch.linalg.matrix_rank(torch.cat([a[1], b[1]]), rtol=1e-4) == 8
    # with noise, a text is predicted from its own image far better than from another pair's
    images, texts = make_pairs(2000, 0)
    w = torch.linalg.lstsq(images, texts).solution
    matched = (images @ w - texts).pow(2).mean()
    shuffled = (images @ w - texts.roll(1, 0)).pow(2).mean()
    assert matched < 0.6 * shuffled


# ------------------------------------------------------------------------------ bigram corpus
def test_bigram_corpus_types_and_seeds():
    corpus = make_corpus(20, 0)
    assert len(corpus) == 20 and all(isinstance(t, int) for s in corpus for t in s)
    assert make_corpus(20, 0) == corpus and make_corpus(20, 1) != corpus


def test_sequences_end_at_eos_or_max_len_and_never_emit_bos():
    for vocab, max_len in ((8, 12), (5, 4)):
        for seq in make_corpus(300, 2, vocab=vocab, max_len=max_len):
            assert 1 <= len(seq) <= max_len and 0 not in seq and max(seq) <= vocab - 1
            assert vocab - 1 not in seq[:-1]                      # nothing after eos
            assert seq[-1] == vocab - 1 or len(seq) == max_len


def test_the_corpus_follows_its_source():
    probs = source_probabilities(8)
    assert probs.shape == (8, 8) and torch.allclose(probs.sum(1), torch.ones(8)) and probs[:, 0].max() < 1e-30
    counts = torch.zeros(8, 8)
    for seq in make_corpus(3000, 0):
        for a, b in zip([0, *seq[:-1]], seq):
            counts[a, b] += 1
    seen = counts.sum(1) > 500                                     # rows visited often enough
    assert seen.sum() >= 3
    empirical = counts[seen] / counts[seen].sum(1, keepdim=True)
    assert (empirical - probs[seen]).abs().max() < 0.05


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, word", [
    (lambda: make_bars(0, 0), "n must be"), (lambda: make_bars(4, 0, size=8), "size must be"),
    (lambda: make_bars(4, 0, noise=-1.0), "noise must be"), (lambda: make_flag_task(4.0, 0), "n must be"),
    (lambda: make_flag_task(4, 0, dim=1), "dim must be"), (lambda: make_pairs(-2, 0), "n must be"),
    (lambda: make_corpus(3, 0, vocab=2), "vocab must be"), (lambda: make_corpus(3, 0, max_len=0), "max_len"),
])
def test_bad_arguments_are_named(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ------------------------------------------------------------------------------ relation_task
def test_relation_task_shapes_seeds_and_answers():
    scene, x, y, answer = make_relation_data(300, 2)
    assert scene.shape == (300, 36) and scene.dtype == torch.float32
    assert x.dtype == y.dtype == answer.dtype == torch.int64 and bool((x != y).all())
    assert all(torch.equal(a, b) for a, b in zip(make_relation_data(300, 2), (scene, x, y, answer)))
    assert not torch.equal(make_relation_data(300, 3)[0], scene)
    rank = scene.reshape(300, 6, 6).argmax(2)                      # each scene's rows are a permutation
    assert bool((rank.sort(1).values == torch.arange(6)).all())
    rows = torch.arange(300)
    assert torch.equal(answer, (rank[rows, x] < rank[rows, y]).long())


def test_relation_task_bag_of_words_cannot_tell_the_answer():
    """Swapping x and y keeps the bag of words and flips every answer: order is the whole story."""
    scene, x, y, answer = make_relation_data(400, 0)
    rank = scene.reshape(400, 6, 6).argmax(2)
    rows = torch.arange(400)
    assert torch.equal((rank[rows, y] < rank[rows, x]).long(), 1 - answer)
    assert 0.4 < answer.float().mean().item() < 0.6
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        make_relation_data(0, 0)
