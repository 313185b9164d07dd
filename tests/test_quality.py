"""mmcourse.data.quality: each corruption changes what it should and nothing else, reproducibly,
never in place."""

from functools import partial

import pytest
import torch

from mmcourse.data import quality as q
from mmcourse.data.base import ModalDataset
from mmcourse.data.synergy import load_xor


@pytest.fixture(scope="module")
def split(av_digits):
    return av_digits.test.subset(slice(0, 300))


@pytest.fixture(scope="module")
def vocab_size(av_digits):
    return len(av_digits.info["vocab"])


def snapshot(data):
    return {k: v.clone() for k, v in data.tensors.items()}


def assert_same(a, b, keys):
    for k in keys:
        assert torch.equal(a.tensors[k], b.tensors[k]), f"{k} should be untouched"


CORRUPTIONS = {
    "imbalance": partial(q.imbalance, ratio=10),
    "drop_modality": partial(q.drop_modality, p=0.5, modality="image"),
    "remove_modality": partial(q.remove_modality, modality="audio"),
    "unpair": partial(q.unpair, paired_fraction=0.2, modalities=["image", "audio"]),
    "gaussian_noise": partial(q.gaussian_noise, std=1.0),
    "salt_and_pepper": partial(q.salt_and_pepper, fraction=0.2),
    "occlusion": partial(q.occlusion, size=10),
    "noise_at_snr": partial(q.noise_at_snr, snr_db=0.0),
    "token_dropout": partial(q.token_dropout, p=0.5),
    "token_substitution": partial(q.token_substitution, p=0.5, vocab_size=30),
    "label_noise": partial(q.label_noise, p=0.3),
    "fewer_samples": partial(q.fewer_samples, factor=10, modality="text"),
    "rescale": partial(q.rescale, scale=255.0, modality="image"),
    "resize": partial(q.resize, size=14),
    "random_projection": partial(q.random_projection, dim=16, modality="audio"),
    "shuffle_pairs": partial(q.shuffle_pairs, fraction=0.3, modality="audio"),
    "time_shift": partial(q.time_shift, shift=4, random=True),
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_never_modify_the_clean_data_and_reproduce(split, name):
    before = snapshot(split)
    meta_before = {k: (v.clone() if isinstance(v, torch.Tensor) else list(v)) for k, v in split.meta.items()}
    out1 = CORRUPTIONS[name](split)
    out2 = CORRUPTIONS[name](split)
    assert isinstance(out1, ModalDataset) and out1 is not split
    for k, v in before.items():
        assert torch.equal(split.tensors[k], v), f"{name} modified {k} in place"
    assert set(split.tensors) == set(before), f"{name} added a key to the clean split"
    for k, v in meta_before.items():
        assert (torch.equal(split.meta[k], v) if isinstance(v, torch.Tensor) else split.meta[k] == v)
    for k in out1.tensors:                       # same seed -> same result
        assert torch.equal(out1.tensors[k], out2.tensors[k]), f"{name} is not reproducible in {k}"


@pytest.mark.parametrize("name", ["drop_modality", "gaussian_noise", "token_dropout", "label_noise",
                                  "shuffle_pairs", "time_shift", "salt_and_pepper", "unpair"])
def test_another_seed_gives_another_corruption(split, name):
    a, b = CORRUPTIONS[name](split, seed=1), CORRUPTIONS[name](split, seed=2)
    assert any(not torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_imbalance_gives_a_long_tail_and_keeps_samples_whole(split, av_digits):
    data = av_digits.train
    out = q.imbalance(data, 10, seed=0)
    counts = q.class_counts(out.tensors["label"], 10)
    n_max = int(q.class_counts(data.tensors["label"]).min())
    assert counts[0] == n_max and counts[9] == round(n_max / 10)
    assert (counts[:-1] >= counts[1:]).all()                     # monotone tail
    # each kept sample is an original sample, intact in every modality and its meta
    idx = [data.meta["mnist_index"].index(i) for i in out.meta["mnist_index"][:20]]
    for k in data.keys:
        assert torch.equal(out.tensors[k][:20], data.tensors[k][idx])
    step = q.imbalance(data, 10, profile="step", order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    c = q.class_counts(step.tensors["label"], 10)
    assert (c[5:] == n_max).all() and (c[:5] == round(n_max / 10)).all()
    with pytest.raises(ValueError, match="ratio"):
        q.imbalance(data, 0.5)


def test_missing_modalities_are_masks_not_zeros(split):
    out = q.drop_modality(split, 0.5, modality="image", seed=0)
    mask = out.tensors["image_mask"]
    assert mask.dtype == torch.bool and mask.shape == (len(split),)
    assert 0.4 < (~mask).float().mean() < 0.6
    assert_same(out, split, ["image", "audio", "text", "label"])          # values untouched
    both = q.drop_modality(out, 0.5, modality="image", seed=1)           # masks combine by AND
    assert not (both.tensors["image_mask"] & ~mask).any()
    where = torch.arange(len(split)) % 3 == 0
    assert torch.equal(q.set_missing(split, where, modality="text").tensors["text_mask"], ~where)
    gone = q.remove_modality(split, modality="audio")
    assert not gone.tensors["audio_mask"].any() and "image_mask" not in gone
    assert q.drop_modality(split, 0.0, modality="text", seed=0).tensors["text_mask"].all()
    with pytest.raises(KeyError, match="no modality 'video'"):
        q.drop_modality(split, 0.5, modality="video")
    with pytest.raises(ValueError, match="probability"):
        q.drop_modality(split, 1.5, modality="image")


def test_unpair_keeps_a_paired_fraction_and_one_modality_elsewhere(split):
    out = q.unpair(split, 0.2, modalities=["image", "audio"], seed=0)
    im, au, paired = out.tensors["image_mask"], out.tensors["audio_mask"], out.meta["paired"]
    assert paired.sum() == round(0.2 * len(split))
    assert (im & au).eq(paired).all()                    # both present exactly where paired
    assert (im | au).all()                               # every sample keeps at least one
    assert "text_mask" not in out


def test_image_noises(split):
    x = split.tensors["image"]
    g = q.gaussian_noise(split, 0.5, seed=0).tensors["image"]
    assert g.shape == x.shape and abs((g - x).std().item() - 0.5) < 0.02
    assert torch.equal(q.gaussian_noise(split, 0.0).tensors["image"], x)
    sp = q.salt_and_pepper(split, 0.2, seed=0).tensors["image"]
    changed = sp != x
    assert 0.17 < changed.float().mean() < 0.21
    assert set(sp[changed].unique().tolist()) <= {x.min().item(), x.max().item()}
    occ = q.occlusion(split, 10, seed=0).tensors["image"]
    blank = (occ == x.min()) & (x != x.min())
    assert (blank.flatten(1).sum(1) <= 100).all()
    assert ((occ != x).flatten(1).sum(1) <= 100).all()
    assert_same(q.occlusion(split, 10), split, ["audio", "text", "label"])
    with pytest.raises(ValueError, match="size"):
        q.occlusion(split, 40)
    with pytest.raises(TypeError, match="float"):
        q.gaussian_noise(split, 1.0, modality="text")


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0])
def test_noise_at_snr_has_the_stated_signal_to_noise_ratio(split, snr):
    x = split.tensors["audio"]
    out = q.noise_at_snr(split, snr, seed=0)
    noise = out.tensors["audio"] - x
    measured = 10 * torch.log10(x.var(dim=(1, 2, 3)) / noise.pow(2).mean(dim=(1, 2, 3)))
    assert abs(measured.mean().item() - snr) < 0.1
    assert_same(out, split, ["image", "text", "label"])


def test_token_corruptions_touch_only_words(split, vocab_size):
    ids = split.tensors["text"]
    words = (ids >= 4).sum(1)
    dropped = q.token_dropout(split, 0.5, seed=0).tensors["text"]
    assert dropped.shape == ids.shape
    left = (dropped >= 4).sum(1)
    assert (left <= words).all() and 0.4 < 1 - left.sum() / words.sum() < 0.6
    # survivors keep their order and are packed to the left
    for row in range(20):
        kept = dropped[row][dropped[row] != 0].tolist()
        it = iter(ids[row].tolist())
        assert all(t in it for t in kept)
        assert (dropped[row][len(kept):] == 0).all()
    assert torch.equal(q.token_dropout(split, 0.0).tensors["text"], ids)
    sub = q.token_substitution(split, 1.0, vocab_size=vocab_size, seed=0).tensors["text"]
    assert torch.equal(sub == 0, ids == 0)                      # padding untouched
    assert (sub[ids >= 4] >= 4).all() and (sub < vocab_size).all()
    assert (sub != ids).float().mean() > 0.3


def test_label_noise_flips_to_another_class_and_keeps_the_clean_labels(split):
    out = q.label_noise(split, 0.3, num_classes=10, seed=0)
    y, clean = out.tensors["label"], out.meta["clean_label"]
    assert torch.equal(clean, split.tensors["label"])
    assert 0.24 < (y != clean).float().mean() < 0.36
    assert y.min() >= 0 and y.max() < 10
    assert_same(out, split, ["image", "audio", "text"])
    assert torch.equal(q.label_noise(split, 0.0).tensors["label"], clean)


def test_asymmetry_corruptions(split):
    few = q.fewer_samples(split, 10, modality="text", seed=0)
    assert few.tensors["text_mask"].sum() == 30
    big = q.rescale(split, 255.0, modality="image", shift=3.0)
    torch.testing.assert_close(big.tensors["image"], split.tensors["image"] * 255 + 3)
    small = q.resize(split, 14)
    assert small.tensors["image"].shape == (300, 1, 14, 14)
    proj = q.random_projection(split, 16, modality="audio", seed=0)
    assert proj.tensors["audio"].shape == (300, 16)
    # the same seed gives the same projection matrix: a linear map of the input
    again = q.random_projection(split.subset(slice(0, 5)), 16, modality="audio", seed=0)
    torch.testing.assert_close(again.tensors["audio"], proj.tensors["audio"][:5])
    assert_same(proj, split, ["image", "text", "label"])


def test_shuffle_pairs_repairs_exactly_the_stated_fraction(split):
    out = q.shuffle_pairs(split, 0.3, modality="audio", seed=0)
    bad = out.meta["mispaired"]
    assert bad.sum() == 90
    same = (out.tensors["audio"] == split.tensors["audio"]).flatten(1).all(1)
    assert torch.equal(same, ~bad)
    assert_same(out, split, ["image", "text", "label"])
    # the re-paired audio is a permutation of the chosen samples' audio
    moved = out.tensors["audio"][bad].flatten(1).sum(1).sort().values
    torch.testing.assert_close(moved, split.tensors["audio"][bad].flatten(1).sum(1).sort().values)


def test_time_shift_moves_frames_and_fills_with_silence(split):
    x = split.tensors["audio"]
    out = q.time_shift(split, 3).tensors["audio"]
    assert torch.equal(out[..., 3:], x[..., :-3])
    floor = x.flatten(1).min(1).values
    assert torch.equal(out[..., :3], floor.view(-1, 1, 1, 1).expand(-1, 1, 32, 3))
    back = q.time_shift(split, -2).tensors["audio"]
    assert torch.equal(back[..., :-2], x[..., 2:])
    rnd = q.time_shift(split, 4, random=True, seed=0)
    assert rnd.meta["time_shift"].abs().max() <= 4 and rnd.meta["time_shift"].unique().numel() > 3
    with pytest.raises(ValueError, match="frames"):
        q.time_shift(split, 32)


def test_compose_and_concat(split):
    f = q.compose(partial(q.gaussian_noise, std=1.0), partial(q.drop_modality, p=0.5, modality="audio"))
    out = f(split)
    assert "audio_mask" in out and not torch.equal(out.tensors["image"], split.tensors["image"])
    both = q.concat([split, out])
    assert len(both) == 600 and both.tensors["audio_mask"][:300].all()
    assert torch.equal(both.tensors["image"][300:], out.tensors["image"])
    with pytest.raises(TypeError, match="ModalDataset"):
        q.gaussian_noise(split.tensors, 1.0)


def test_xor_dataset_has_synergy_only():
    s = load_xor(n_train=400, n_val=50, n_test=50, seed=0)
    tr = s.train
    y, a, b = tr.tensors["label"], tr.meta["a"], tr.meta["b"]
    assert torch.equal(y, a ^ b)
    assert tr.tensors["x1"].shape == (400, 8) and tr.tensors["x2"].shape == (400, 8)
    # each bit is readable from its own modality, but the label is independent of each bit
    mu_sign = lambda x, bit: ((x @ (x[bit == 1].mean(0) - x[bit == 0].mean(0))) > 0).long()  # noqa: E731
    assert (mu_sign(tr.tensors["x1"], a) == a).float().mean() > 0.95
    assert abs((y == a).float().mean().item() - 0.5) < 0.08
    assert s.info["bayes_accuracy"] > 0.99
    again = load_xor(n_train=400, n_val=50, n_test=50, seed=0)
    assert torch.equal(again.train.tensors["x1"], tr.tensors["x1"])
    with pytest.raises(ValueError, match="noise"):
        load_xor(noise=0)


#: every public name of the module before it became a package of one-idea modules
PUBLIC_NAMES = (
    "MASK_SUFFIX", "class_counts", "compose", "concat", "drop_modality", "fewer_samples",
    "gaussian_noise", "imbalance", "label_noise", "mask_of", "noise_at_snr", "occlusion",
    "random_projection", "remove_modality", "rescale", "resize", "salt_and_pepper", "set_missing",
    "shuffle_pairs", "time_shift", "token_dropout", "token_substitution", "unpair",
)


def test_the_public_names_stay_importable_from_mmcourse_data_quality():
    assert sorted(q.__all__) == sorted(PUBLIC_NAMES)
    assert [name for name in PUBLIC_NAMES if not hasattr(q, name)] == []
    # ``Corruption`` was importable though not in __all__; no submodule shadows a function
    # (``imbalance`` the function lives in ``class_imbalance`` for that reason)
    from mmcourse.data.quality import Corruption  # noqa: F401

    assert [name for name in PUBLIC_NAMES if name != "MASK_SUFFIX" and not callable(getattr(q, name))] == []
