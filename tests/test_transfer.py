"""Linear probes (against scikit-learn), the label-efficiency experiment, shipped checkpoints and
audio-visual contrastive pretraining."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from mmcourse import pretrained
from mmcourse.label_efficiency import (
    few_shot_indices,
    first_k_per_class,
    probe_accuracy,
    run_label_efficiency,
    summarise,
)
from mmcourse.models.av_contrastive import AudioVisualEncoder
from mmcourse.models.retrieval import DualEncoder
from mmcourse.probe import LinearProbe, fit_logistic_regression, logistic_regression_gd


# -- the linear probe is scikit-learn's logistic regression --------------------------------------
@pytest.mark.parametrize("C", [0.05, 1.0, 20.0])
def test_logistic_regression_matches_scikit_learn(C):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)) + np.repeat(np.eye(3, 6) * 2, 30, axis=0)
    y = np.repeat(np.arange(3), 30)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(x, y)
    W, b = fit_logistic_regression(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 3, C=C)
    # scikit-learn's multinomial parameters are defined up to a common shift of the intercepts
    assert np.allclose(W.numpy(), ref.coef_, atol=2e-3)
    assert np.allclose(b.numpy() - b.numpy().mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-3)
    probs = torch.softmax(torch.tensor(x, dtype=torch.float32) @ W.T + b, dim=1).numpy()
    assert np.allclose(probs, ref.predict_proba(x), atol=1e-3)


def test_linear_probe_standardises_like_a_scaler_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4)) * [1, 10, 0.1, 3] + rng.integers(0, 2, size=(60, 1)) * [1, 5, 0.3, 0]
    y = np.digitize(x[:, 1] + rng.normal(size=60), [-2.0, 4.0])  # 3 classes (see the next test)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000)).fit(x, y)
    probe = LinearProbe(4, 3, C=0.5).fit(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    probs = torch.softmax(probe(torch.tensor(x, dtype=torch.float32)).logits, 1).detach().numpy()
    assert np.allclose(probs, ref.predict_proba(x), atol=1e-3)
    assert (probe.predict(torch.tensor(x, dtype=torch.float32)).numpy() == ref.predict(x)).mean() >= 0.98


def test_two_classes_are_scikit_learns_binary_model_at_twice_c():
    """With 2 classes the softmax model's W = [w1, w2] only matters through w1 - w2, and the
    penalty ||w1||² + ||w2||² is smallest at w1 = -w2: half of scikit-learn's ||w1 - w2||²
    (its binary model has one vector). So C here is scikit-learn's 2C."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)
    ref = LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(x, y)
    W, b = fit_logistic_regression(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 2, C=1.0)
    probs = torch.softmax(torch.tensor(x, dtype=torch.float32) @ W.T + b, dim=1).numpy()
    assert np.allclose(probs, ref.predict_proba(x), atol=1e-3)


def test_gradient_descent_reaches_the_same_minimum_and_step_zero_is_uniform():
    g = torch.Generator().manual_seed(3)
    y = torch.arange(40) % 4
    x = torch.randn(40, 5, generator=g) + 2 * torch.randn(4, 5, generator=g)[y]
    W, b = fit_logistic_regression(x, y, 4, C=0.5)
    Wg, bg = logistic_regression_gd(x, y, 4, C=0.5, steps=4000, lr=0.2)
    assert torch.allclose(torch.softmax(x @ Wg.T + bg, 1), torch.softmax(x @ W.T + b, 1), atol=2e-3)
    W0, b0 = logistic_regression_gd(x, y, 4, steps=0)
    assert torch.equal(W0, torch.zeros(4, 5)) and torch.equal(b0, torch.zeros(4))


def test_linear_probe_errors():
    probe = LinearProbe(3, 2)
    with pytest.raises(RuntimeError, match="before fit"):
        probe.predict(torch.randn(2, 3))
    with pytest.raises(ValueError, match="integer labels \\(4,\\)"):
        probe.fit(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="features \\(n, 3\\)"):
        probe.fit(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        probe.fit(torch.full((2, 3), float("nan")), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="C .* must be > 0"):
        fit_logistic_regression(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 2, C=0)


# -- the label-efficiency experiment ----------------------------------------------------------
def test_few_shot_indices_draw_k_per_class_reproducibly():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 5)
    idx = few_shot_indices(labels, 5, seed=3)
    assert torch.bincount(labels[idx]).tolist() == [5, 5, 5] and len(set(idx.tolist())) == 15
    assert torch.equal(idx, few_shot_indices(labels, 5, seed=3))
    assert not torch.equal(idx, few_shot_indices(labels, 5, seed=4))
    with pytest.raises(ValueError, match="class 2 has 5 examples, fewer than k=6"):
        few_shot_indices(labels, 6)
    with pytest.raises(ValueError, match="k \\(labels per class\\)"):
        few_shot_indices(labels, 0)


def test_first_k_per_class_and_probe_accuracy():
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 1, 2])
    assert first_k_per_class(labels, 2, 3).tolist() == [1, 3, 2, 5, 0, 4]
    with pytest.raises(ValueError, match="class 0 has 3 examples, fewer than k=4"):
        first_k_per_class(labels, 4, 3)
    centres = torch.eye(3, 8)
    g = torch.Generator().manual_seed(0)
    test_y = torch.arange(60) % 3
    test = centres[test_y] + 0.1 * torch.randn(60, 8, generator=g)
    assert probe_accuracy(centres[labels], labels, test, test_y, 1) == 1.0


def test_sum_pooled_features_are_the_feature_map_summed_over_positions():
    from mmcourse.label_efficiency import SumPooled, frozen_features

    enc = DualEncoder(20, width=4).image_encoder
    x = torch.rand(3, 3, 32, 32)
    z = frozen_features(SumPooled(enc), x)
    assert z.shape == (3, 8) and torch.allclose(z, enc.features(x).sum((2, 3)), atol=1e-5)


def test_summarise_gives_the_mean_and_a_student_t_interval():
    from scipy import stats

    accs = [0.5, 0.7, 0.65]
    records = [{"method": "scratch", "k": 5, "seed": s, "accuracy": a} for s, a in enumerate(accs)]
    records.append({"method": "probe", "k": 5, "seed": 0, "accuracy": 0.9})
    rows = summarise(records)
    assert [r["method"] for r in rows] == ["probe", "scratch"]
    half = stats.t.ppf(0.975, 2) * statistics.stdev(accs) / math.sqrt(3)
    assert rows[1]["mean"] == pytest.approx(statistics.fmean(accs))
    assert rows[1]["high"] - rows[1]["mean"] == pytest.approx(half)
    assert rows[0]["low"] == rows[0]["high"] == 0.9


def test_label_efficiency_runs_every_method(tiny_counting):
    pool, test = tiny_counting
    clip = pretrained.load("shapes_clip")
    records = run_label_efficiency(clip.image_encoder, lambda: DualEncoder(20).image_encoder, pool, test,
                                   ks=(2,), seeds=(0, 1), steps=4, progress=False)
    assert {(r["method"], r["seed"]) for r in records} == {(m, s) for m in ("probe", "finetune", "scratch")
                                                            for s in (0, 1)}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in records)
    # fine-tuning trains a copy: the pretrained tower is untouched
    assert torch.equal(clip.image_encoder.proj[2].weight,
                       pretrained.load("shapes_clip").image_encoder.proj[2].weight)


@pytest.fixture(scope="module")
def tiny_counting():
    from mmcourse.data.shapes.holdout import load_counting

    return load_counting(10, seed=0), load_counting(10, seed=1, name="test")


@pytest.mark.slow
def test_probe_on_pretrained_features_beats_scratch_with_5_labels():
    """The chapter's claim, on a smaller test set: with 5 labels per class the probe on the
    shipped features beats a network trained from scratch by >= 15 points (benchmark: >= 20)."""
    from mmcourse.data.shapes.holdout import load_counting

    clip = pretrained.load("shapes_clip")
    pool, test = load_counting(60, seed=0), load_counting(100, seed=1, name="test")
    records = run_label_efficiency(clip.image_encoder, lambda: DualEncoder(20).image_encoder, pool, test,
                                   ks=(5,), seeds=(0, 1, 2), methods=("probe", "scratch"), progress=False)
    means = {r["method"]: r["mean"] for r in summarise(records)}
    assert means["probe"] >= means["scratch"] + 0.15, means


# -- shipped checkpoints -------------------------------------------------------------------------
def test_shipped_checkpoint_is_small_verified_and_loads():
    assert "shapes_clip" in pretrained.available()
    path = pretrained.FOLDER / "shapes_clip.pt"
    assert path.stat().st_size < 5e6
    model = pretrained.load("shapes_clip")
    assert isinstance(model, DualEncoder) and not model.training
    meta = pretrained.metadata("shapes_clip")
    assert meta["profile"] == "full" and meta["held_out"]


def test_save_load_round_trip_and_a_clear_error_on_mismatch(tmp_path):
    model = DualEncoder(20, embed_dim=8, width=4, image_features=8, token_dim=4, hidden=8)
    kwargs = {"vocab_size": 20, "embed_dim": 8, "width": 4, "image_features": 8, "token_dim": 4, "hidden": 8}
    pretrained.save(model, "tiny", kwargs, {"note": "test"}, folder=tmp_path)
    again = pretrained.load("tiny", tmp_path)
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    assert pretrained.metadata("tiny", tmp_path)["note"] == "test"
    data = bytearray((tmp_path / "tiny.pt").read_bytes())
    data[-20] ^= 0xFF
    (tmp_path / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(pretrained.ChecksumMismatch, match="does not match its SHA-256"):
        pretrained.load("tiny", tmp_path)
    (tmp_path / "tiny.sha256").unlink()
    with pytest.raises(FileNotFoundError, match="checksum file"):
        pretrained.load("tiny", tmp_path)
    with pytest.raises(FileNotFoundError, match="available"):
        pretrained.load("nope", tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        pretrained.load("../tiny", tmp_path)


# -- audio-visual contrastive pretraining --------------------------------------------------------
def test_av_encoder_contract_and_errors():
    model = AudioVisualEncoder(embed_dim=8, width=4, features=16)
    out = model({"image": torch.randn(5, 1, 28, 28), "audio": torch.randn(5, 1, 32, 32)})
    assert out.logits is None and out.loss.ndim == 0 and out.extras["similarity"].shape == (5, 5)
    assert torch.allclose(out.extras["image_emb"].norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(KeyError, match="'audio'"):
        model({"image": torch.randn(2, 1, 28, 28)})
    with pytest.raises(TypeError, match="batch dict"):
        model(torch.randn(2, 1, 28, 28))


@pytest.mark.slow
def test_av_pretraining_learns_digits_without_labels():
    """Contrastive image<->speech pretraining for 3 epochs on clean AV-Digits: zero-shot image
    accuracy by spoken prototypes well above chance (0.10): >= 0.5."""
    from mmcourse.config import seed_everything
    from mmcourse.data.av_digits import clean_av_digits
    from mmcourse.train import fit
    from mmcourse.zero_shot import prototype_accuracy

    seed_everything(0)
    av = clean_av_digits(0)
    model = AudioVisualEncoder()
    fit(model, av.train.select(["image", "audio"]), epochs=3, batch_size=128, lr=2e-3, progress=False)
    acc = prototype_accuracy(model, av.test.tensors["image"], av.test.tensors["label"],
                             av.train.tensors["audio"][:200], av.train.tensors["label"][:200])
    assert acc >= 0.5


def test_checkpoints_ship_with_the_package():
    import tomllib

    root = pretrained.FOLDER.parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"*.pt", "*.sha256"} <= set(data["mmcourse.checkpoints"])
    assert (pretrained.FOLDER / "__init__.py").is_file()  # a package, so that setuptools finds it
    for name in pretrained.available():
        assert (pretrained.FOLDER / f"{name}.sha256").is_file(), name
    # and git keeps them (a broad "checkpoints/" ignore rule once hid the folder)
    import shutil
    import subprocess

    if shutil.which("git") and (root / ".git").exists():
        ignored = subprocess.run(["git", "check-ignore", "-q", str(pretrained.FOLDER / "shapes_clip.pt")],
                                 cwd=root, capture_output=True)
        assert ignored.returncode == 1, "mmcourse/checkpoints/ is git-ignored: the checkpoint would not ship"
