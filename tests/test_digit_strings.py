"""Spoken digit strings: shapes, seeding, voice split, and true boundaries that match the audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data.av_digits import load_av_digits
from mmcourse.data.digit_strings import BLANK, NOISY_SNR_DB, digits_to_text, load_digit_strings, say

SIZES = {"train": 40, "val": 10, "test": 20}


@pytest.fixture(scope="module")
def strings():
    return load_digit_strings(seed=0, sizes=SIZES)


def test_shapes_lengths_and_padding(strings):
    for split in strings:
        t = split.tensors
        n = len(split)
        assert n == SIZES[split.name]
        assert t["audio"].shape[:2] == (n, 32) and t["audio"].dtype == torch.float32
        assert t["digits"].shape == (n, 7)
        assert ((t["digit_lengths"] >= 1) & (t["digit_lengths"] <= 7)).all()
        for i in range(n):
            k = int(t["digit_lengths"][i])
            assert (t["digits"][i, :k] >= 0).all() and (t["digits"][i, :k] <= 9).all()
            assert (t["digits"][i, k:] == -1).all()
            assert split.meta["text"][i] == digits_to_text(t["digits"][i, :k])
    assert BLANK == 10


def test_boundaries_are_ordered_inside_the_utterance_and_cover_the_speech(strings):
    silence = float(strings.train.tensors["audio"].min())
    for split in strings:
        for i, bounds in enumerate(split.meta["boundaries"]):
            n_frames = int(split.tensors["audio_lengths"][i])
            assert len(bounds) == int(split.tensors["digit_lengths"][i])
            assert (bounds[:, 1] > bounds[:, 0]).all() and (bounds[1:, 0] >= bounds[:-1, 1]).all()
            assert bounds[0, 0] >= 2 and bounds[-1, 1] <= n_frames - 2        # the silent edges
            x = split.tensors["audio"][i, :, :n_frames]
            loud = x.max(0).values > silence + 1e-4
            inside = torch.zeros(n_frames, dtype=torch.bool)
            for s, e in bounds:
                inside[s:e] = True
            assert not loud[~inside].any()                   # clean: only silence outside the digits
            assert loud[bounds[:, 0]].all() and loud[bounds[:, 1] - 1].all()  # voiced at both ends


def test_seeded_and_voices_split_as_av_digits(strings):
    again = load_digit_strings(seed=0, sizes=SIZES)
    assert torch.equal(again.test.tensors["audio"], strings.test.tensors["audio"])
    other = load_digit_strings(seed=1, sizes=SIZES)
    assert not torch.equal(other.train.tensors["digits"], strings.train.tensors["digits"])
    voices = {s.name: set(s.meta["speaker"]) for s in strings}
    assert not voices["train"] & voices["test"] and not voices["train"] & voices["val"]
    av = load_av_digits(seed=0)
    assert voices["test"] <= set(av.test.meta["speaker"])


def test_noise_fills_the_silence():
    noisy = load_digit_strings(seed=0, sizes=SIZES, snr_db=NOISY_SNR_DB)
    x = noisy.test.tensors["audio"][0, :, :2]                   # the first frames are a silent edge
    assert x.std() > 0.1


def test_say_one_voice_and_bad_input():
    voice = load_digit_strings(seed=0, sizes=SIZES).test.meta["speaker"][0]
    db, bounds = say([3, 1, 4], voice, seed=0)
    assert db.shape[0] == 32 and bounds.shape == (3, 2)
    assert np.array_equal(say([3, 1, 4], voice, seed=0)[0], db)
    with pytest.raises(ValueError, match="unknown voice"):
        say([1], "nobody")
    with pytest.raises(ValueError, match="sizes"):
        load_digit_strings(sizes={"train": 1})
    with pytest.raises(ValueError, match="min_digits"):
        load_digit_strings(min_digits=3, max_digits=2)


def test_extra_training_strings_leave_everything_else_as_it_was(strings):
    more = load_digit_strings(seed=0, sizes=SIZES, extra_train=15)
    assert len(more.train) == SIZES["train"] + 15 and more.info["standardise"] == strings.info["standardise"]
    for name in ("val", "test"):
        assert torch.equal(getattr(more, name).tensors["audio"], getattr(strings, name).tensors["audio"])
    t = int(strings.train.tensors["audio"].shape[2])
    assert torch.equal(more.train.tensors["digits"][: SIZES["train"]], strings.train.tensors["digits"])
    assert torch.equal(more.train.tensors["audio"][: SIZES["train"], :, :t], strings.train.tensors["audio"])
    heard = set(more.train.meta["speaker"][SIZES["train"]:])                   # training voices only
    assert heard and heard.isdisjoint(strings.val.meta["speaker"] + strings.test.meta["speaker"])
    with pytest.raises(ValueError, match="extra_train"):
        load_digit_strings(seed=0, sizes=SIZES, extra_train=-1)
