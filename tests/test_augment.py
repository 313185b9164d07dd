"""Shifted copies: the original first, then each sample circularly shifted within the bounds."""

import pytest
import torch

from mmcourse.data.augment import random_shift, shifted_copies
from mmcourse.data.base import ModalDataset


def toy(n=12):
    g = torch.Generator().manual_seed(0)
    return ModalDataset({"image": torch.rand(n, 1, 8, 8, generator=g),
                         "audio": torch.rand(n, 1, 6, 10, generator=g),
                         "text": torch.randint(1, 9, (n, 5), generator=g),
                         "label": torch.arange(n) % 10},
                        name="train", meta={"hint": [f"h{i}" for i in range(n)],
                                            "flags": torch.zeros(n, 10, dtype=torch.bool)})


def shifts_of(x, y, max_shift):
    """Every (di, dj) within the bounds such that roll(x) == y."""
    return [(di, dj) for di in range(-max_shift[0], max_shift[0] + 1)
            for dj in range(-max_shift[1], max_shift[1] + 1)
            if torch.equal(torch.roll(x, (di, dj), dims=(-2, -1)), y)]


def test_shifted_copies_keep_labels_and_shift_within_bounds():
    data = toy()
    out = shifted_copies(data, 3, seed=0)
    n = len(data)
    assert len(out) == 3 * n and out.name == "trainx3"
    for key in data.keys:
        assert torch.equal(out.tensors[key][:n], data.tensors[key])  # the original comes first
    assert torch.equal(out.tensors["label"], data.tensors["label"].repeat(3))
    assert torch.equal(out.tensors["text"], data.tensors["text"].repeat(3, 1))  # text untouched
    assert out.meta["hint"] == data.meta["hint"] * 3 and out.meta["flags"].shape == (3 * n, 10)
    seen = set()
    for i in range(n, 3 * n):
        img = shifts_of(data.tensors["image"][i % n], out.tensors["image"][i], (2, 2))
        aud = shifts_of(data.tensors["audio"][i % n], out.tensors["audio"][i], (0, 3))
        assert img and aud, f"copy {i} is not a bounded shift of sample {i % n}"
        assert all(di == 0 for di, _ in aud)  # spectrograms move in time only
        seen.update(img)
    assert len(seen) > 5  # shifts really are random
    again = shifted_copies(data, 3, seed=0)
    assert all(torch.equal(out.tensors[k], again.tensors[k]) for k in data.keys)
    assert not torch.equal(shifted_copies(data, 2, seed=1).tensors["image"], out.tensors["image"][:2 * n])
    assert shifted_copies(data, 1) is data


def test_random_shift_matches_roll_and_checks_arguments():
    x = torch.arange(2 * 3 * 4.0).view(2, 1, 3, 4)
    g = torch.Generator().manual_seed(0)
    y = random_shift(x, (1, 2), g)
    assert all(shifts_of(x[i], y[i], (1, 2)) for i in range(2))
    with pytest.raises(ValueError, match="max_shift must be in"):
        random_shift(x, (3, 0), g)
    with pytest.raises(ValueError, match="copies must be a positive int"):
        shifted_copies(toy(), 0)
    with pytest.raises(KeyError, match="no modality"):
        shifted_copies(toy(), 2, shifts={"video": (1, 1)})
