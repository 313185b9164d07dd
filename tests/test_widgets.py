"""Headless tests of the explorers: build each one, move its controls, check what it shows.

No kernel or browser: the update logic is a plain function of the control values, and the
figure is a matplotlib ``Figure`` whose artists (bar heights, image data, titles) we can read.
Setting ``widget.value`` runs the same update a slider in the browser would.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data.shapes import load_shapes
from mmcourse.widgets import Explorer
from mmcourse.widgets.attention import attention_explorer, record_attention
from mmcourse.widgets.decoding import decoding_explorer
from mmcourse.widgets.retrieval import retrieval_explorer
from mmcourse.widgets.softmax import entropy_bits, softmax_explorer, softmax_with_temperature


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(60, 10, 40, seed=0)


def bar_heights(ax) -> np.ndarray:
    return np.array([p.get_height() for p in ax.patches if p.get_visible()])


def png_changed(explorer: Explorer, **values) -> bool:
    before = explorer.image.value
    explorer.update(**values)
    return explorer.image.value != before


# -------------------------------------------------------------------------------- softmax
def test_softmax_with_temperature_matches_torch():
    s = torch.randn(4, 7)
    for t in (0.1, 1.0, 3.0):
        want = torch.softmax(s / t, dim=-1).numpy()
        np.testing.assert_allclose(softmax_with_temperature(s.numpy(), t), want, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        softmax_with_temperature([1.0, 2.0], 0.0)


def test_softmax_explorer_temperature_and_shift_move_the_bars():
    scores = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 3.0, 0.0]])
    ex = softmax_explorer(scores, labels=[0, 2], class_names=list("abcd"))
    ax_s, ax_p = ex.figure.axes
    p1 = ex.state["probabilities"]
    np.testing.assert_allclose(bar_heights(ax_p), p1)
    np.testing.assert_allclose(bar_heights(ax_s), scores[0])
    assert ax_p.patches[0].get_facecolor()[:3] != ax_p.patches[1].get_facecolor()[:3]  # true class

    hot = ex.update(temperature=4.0)["probabilities"]            # flatter, same ranking
    assert hot.max() < p1.max() and entropy_bits(hot) > entropy_bits(p1)
    assert list(np.argsort(hot)) == list(np.argsort(p1))
    np.testing.assert_allclose(bar_heights(ax_p), hot)
    assert "τ = 4.00" in ax_p.get_title()

    ex.controls["shift_class"].value = 3                        # as the dropdown would
    assert png_changed(ex, shift=5.0)
    assert ex.state["predicted"] == 3 and ex.state["scores"][3] == pytest.approx(4.0)
    assert "class d" in ax_s.get_title()

    ex.controls["example"].value = 1                         # the shift stays on class d
    np.testing.assert_allclose(ex.state["scores"], [0.0, 0.0, 3.0, 5.0])
    assert ex.state["predicted"] == 3
    assert "true class is <b>c</b>" in ex.text.value


def test_softmax_explorer_scores_a_model_once(av_digits):
    from mmcourse.baselines import unimodal_model

    torch.manual_seed(0)
    model = unimodal_model("image", av_digits)
    test = av_digits.test.subset(slice(0, 20)).select(["image", "label"])
    ex = softmax_explorer(model, test)
    assert ex.controls["example"].max == 19
    logits = model.eval()({"image": test.tensors["image"][:1]}).logits
    np.testing.assert_allclose(ex.state["scores"], logits[0].detach().numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="pass the data split"):
        softmax_explorer(model)
    with pytest.raises(ValueError, match="C >= 2"):
        softmax_explorer(np.zeros((3, 1)))
    with pytest.raises(KeyError, match="no control"):
        ex.update(nope=1)


# -------------------------------------------------------------------------------- attention
@pytest.fixture(scope="module")
def decoder_and_tokens(shapes):
    from mmcourse.models import TinyCausalDecoder

    vocab = shapes.info["vocab"]
    torch.manual_seed(0)
    model = TinyCausalDecoder(len(vocab), dim=16, heads=2, layers=2, max_len=12)
    # one extra <pad> column: the decoder reads text[:, :-1], i.e. every caption token
    tokens = torch.nn.functional.pad(shapes.train.tensors["text"][:6], (0, 1))
    lengths = shapes.train.tensors["length"][:6]
    labels = [[vocab.itos[i] for i in row[: int(n)]] for row, n in zip(tokens.tolist(), lengths)]
    return model, tokens, labels


def test_record_attention_returns_the_models_own_weights(decoder_and_tokens):
    model, tokens, _ = decoder_and_tokens
    records = record_attention(model, {"text": tokens})
    assert list(records) == ["blocks.0.self_attn", "blocks.1.self_attn"]
    for rec, weights in zip(records.values(), model({"text": tokens}).extras["attention"]):
        np.testing.assert_allclose(rec["weights"], weights.numpy(), atol=1e-6)
        # the weights are the softmax of the recorded dot products over the allowed (causal) keys
        e = np.where(rec["allowed"], rec["scores"], -np.inf)
        soft = np.exp(e - e.max(-1, keepdims=True))
        np.testing.assert_allclose(soft / soft.sum(-1, keepdims=True), rec["weights"], atol=1e-5)
        assert not rec["allowed"][..., 0, 1:].any() and rec["allowed"][..., -1, :].all()
    with pytest.raises(ValueError, match="no MultiHeadAttention"):
        record_attention(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_attention_explorer_follows_example_layer_head_query(decoder_and_tokens):
    model, tokens, labels = decoder_and_tokens
    ex = attention_explorer(model, {"text": tokens}, labels=labels)
    ax_map, ax_dot, ax_w = ex.figure.axes[:3]          # then the colour bar of the map
    assert (ax_map.get_ylabel(), ax_map.get_xlabel()) == ("query i", "key j") and len(ex.figure.axes) == 4
    n = len(labels[0])
    assert ex.state["shape"] == (n, n)                       # cropped to the caption's tokens
    assert ex.state["query"] == n - 1 and "query <b>&lt;eos&gt;</b>" in ex.text.value  # escaped
    assert [t.get_text() for t in ax_map.get_yticklabels()] == labels[0]
    first = ax_map.images[0].get_array().copy()

    state = ex.update(layer="blocks.1.self_attn", head=1, query=3)
    want = model({"text": tokens}).extras["attention"][1][0, 1, :n, :n].numpy()
    np.testing.assert_allclose(ax_map.images[0].get_array(), want, atol=1e-6)
    assert not np.allclose(ax_map.images[0].get_array(), first)
    np.testing.assert_allclose(bar_heights(ax_w), want[3], atol=1e-6)
    np.testing.assert_allclose(bar_heights(ax_dot), state["dots"], atol=1e-6)
    assert state["row"].sum() == pytest.approx(1.0, abs=1e-5)
    assert (state["row"][4:] == 0).all()                      # causal: no future keys
    ex.controls["example"].value = 2
    assert ex.state["shape"] == (len(labels[2]),) * 2
    assert ex.update(query=99)["query"] == len(labels[2]) - 1  # clamped to the sequence


def test_attention_explorer_on_cross_attention_fusion(av_digits):
    from mmcourse.models import make_fusion

    torch.manual_seed(0)
    model = make_fusion("cross-attention", av_digits.train.select(["image", "audio", "label"]))
    batch = {k: av_digits.test.tensors[k][:4] for k in ("image", "audio")}
    ex = attention_explorer(model, batch)
    cross = [name for name in ex.controls["layer"].options if "cross" in name]
    assert cross
    state = ex.update(layer=cross[0])
    rec = record_attention(model, batch)[cross[0]]
    assert state["shape"] == rec["weights"].shape[2:]
    np.testing.assert_allclose(state["weights"], rec["weights"][0, 0], atol=1e-6)


# -------------------------------------------------------------------------------- retrieval
@pytest.fixture(scope="module")
def dual_encoder(shapes):
    from mmcourse.models import DualEncoder

    torch.manual_seed(0)
    return DualEncoder(len(shapes.info["vocab"]), embed_dim=16, width=8, hidden=32)


def test_retrieval_explorer_threshold_moves_along_the_curve(shapes, dual_encoder):
    from mmcourse import metrics
    from mmcourse.models.retrieval import embed_dataset, retrieve

    ex = retrieval_explorer(dual_encoder, shapes.test, n=40)
    image_emb, text_emb = embed_dataset(dual_encoder, shapes.test.subset(slice(0, 40)))
    labels = shapes.test.tensors["label"][:40].numpy()
    relevant = labels[:, None] == labels[None, :]
    sizes, recalls = [], []
    for theta in (-1.0, -0.2, 0.0, 0.2, 0.6, 1.0):
        state = ex.update(query=5, theta=theta)
        want = retrieve(text_emb[5], image_emb, theta)
        assert state["retrieved"] == want.indices.tolist()
        pooled = metrics.precision_recall_at_threshold(text_emb @ image_emb.T, relevant, theta)
        assert state["pooled"].recall == pytest.approx(pooled.recall)
        ax_pr = ex.figure.axes[-1]
        dot = [line for line in ax_pr.lines if line.get_label() == "pooled at θ"][0]
        assert dot.get_xdata()[0] == pytest.approx(pooled.recall)
        assert dot.get_ydata()[0] == pytest.approx(pooled.precision)
        sizes.append(len(state["retrieved"]))
        recalls.append(state["pooled"].recall)
    assert sizes[0] == 40 and sizes[-1] == 0
    assert sizes == sorted(sizes, reverse=True) and recalls == sorted(recalls, reverse=True)
    assert recalls[0] == 1.0


def test_retrieval_explorer_thumbnails_and_direction(shapes, dual_encoder):
    ex = retrieval_explorer(dual_encoder, shapes.test, n=30)
    state = ex.update(theta=-1.0, query=2)
    thumbs = ex.figure.axes[1:9]
    assert all(ax.get_visible() for ax in thumbs)
    titles = [float(ax.get_title()) for ax in thumbs]
    assert titles == sorted(titles, reverse=True)           # best first
    assert "|R(q, D)| = 30 of 30" in ex.text.value
    assert ex.figure.axes[0].texts[0].get_text().replace("\n", " ") == shapes.test.meta["caption"][2]
    i2t = ex.update(direction="i2t")
    assert ex.figure.axes[0].images[0].get_visible() and not ex.figure.axes[0].texts[0].get_visible()
    assert i2t["pooled"].precision != state["pooled"].precision or i2t["retrieved"] != state["retrieved"]
    ex.update(theta=1.0)
    assert not any(ax.get_visible() for ax in thumbs)


# -------------------------------------------------------------------------------- decoding
@pytest.fixture(scope="module")
def captioner(shapes):
    from mmcourse.models import Captioner

    torch.manual_seed(0)
    vocab = shapes.info["vocab"]
    return Captioner(len(vocab), embed_dim=16, hidden=32, width=8, attention_dim=16, vocab=vocab)


def test_decoding_explorer_methods(shapes, captioner):
    ex = decoding_explorer(captioner, shapes.test, max_images=6)
    vocab = shapes.info["vocab"]
    images = shapes.test.tensors["image"][:6]
    greedy = captioner.greedy(images)
    state = ex.update(image=4)
    assert state["caption"] == vocab.decode(greedy.tokens[4].tolist())
    assert state["log_prob"] == pytest.approx(float(greedy.log_prob[4]), abs=1e-5)
    np.testing.assert_allclose(bar_heights(ex.figure.axes[1]), state["token_log_probs"])
    assert state["token_log_probs"].sum() == pytest.approx(state["log_prob"], abs=1e-4)
    assert shapes.test.meta["caption"][4] in ex.text.value

    beam = ex.update(method="beam", beam=4)
    assert beam["log_prob"] >= beam["greedy_log_prob"] - 1e-5    # beam never ranks below greedy
    assert "beam K=4" in ex.figure.axes[1].get_title()

    sampled = ex.update(method="sample", temperature=2.0, top_p=1.0)
    fresh = decoding_explorer(captioner, shapes.test, max_images=6)
    assert fresh.update(image=4, method="sample", temperature=2.0, top_p=1.0)["caption"] == sampled["caption"]
    assert "sampling τ=2.0" in ex.figure.axes[1].get_title()


def test_decoding_explorer_attention_per_word(shapes, captioner):
    ex = decoding_explorer(captioner, shapes.test, max_images=3)
    state = ex.update(method="sample", temperature=2.0, top_p=1.0, image=1, word=0)
    gh, gw = captioner.encoder.grid_size
    overlay = ex.figure.axes[0].images[1]
    np.testing.assert_allclose(overlay.get_array(), state["attention"])
    assert state["attention"].shape == (gh, gw) and state["attention"].sum() == pytest.approx(1.0, abs=1e-5)
    if len(state["words"]) > 1:
        later = ex.update(word=1)
        assert not np.allclose(later["attention"], state["attention"])
        assert later["words"][1] in ex.figure.axes[0].get_title()
    assert ex.update(word=19)["word"] == len(state["words"]) - 1


# -------------------------------------------------------------------------------- fusion, quality
@pytest.fixture(scope="module")
def av_small(av_digits):
    """120 test samples (image + audio) and two quickly trained fusion models."""
    from mmcourse.models import make_fusion
    from mmcourse.train import fit

    train = av_digits.train.subset(slice(0, 600)).select(["image", "audio", "label"])
    models = {}
    for strategy in ("early", "late"):
        models[strategy] = make_fusion(strategy, train, seed=0, width=8, dim=32)
        fit(models[strategy], train, epochs=1, lr=3e-3, progress=False, seed=0)
    return models, av_digits.test.subset(slice(0, 120)).select(["image", "audio", "label"])


def test_fusion_explorer_matches_evaluate_on_corrupted_data(av_small):
    from mmcourse.data import quality
    from mmcourse.train import evaluate
    from mmcourse.widgets import fusion_explorer

    models, test = av_small
    ex = fusion_explorer(models, test, n=120)
    assert set(ex.controls["corruption"].options) == {
        "image: Gaussian noise σ", "image: missing (fraction)", "audio: noise at SNR (dB)",
        "audio: missing (fraction)"}
    state = ex.update(strategy="late", corruption="audio: missing (fraction)", level=5)
    want = evaluate(models["late"], quality.drop_modality(test, 1.0, modality="audio"))["accuracy"]
    assert state["accuracy"] == pytest.approx(want) and state["level"] == 1.0
    ax_curve = ex.figure.axes[0]
    late = [line for line in ax_curve.lines if line.get_label().startswith("late ")][0]
    early = [line for line in ax_curve.lines if line.get_label().startswith("early ")][0]
    np.testing.assert_allclose(late.get_ydata(), state["curve"])
    assert late.get_linewidth() > early.get_linewidth() and "ER=" in early.get_label()
    # the same numbers as the robustness module's own sweep
    from functools import partial

    from mmcourse.robustness import robustness_curve

    levels = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    drop_audio = partial(quality.drop_modality, modality="audio")
    reference = robustness_curve(models["late"], test, drop_audio, levels)
    np.testing.assert_allclose(state["curve"], reference.accuracy)
    assert state["relative_robustness"] == pytest.approx(reference.relative_robustness())
    audio_cells = [ax for ax in ex.figure.axes[1:] if ax.images and ax.images[0].get_cmap().name == "magma"]
    assert audio_cells and not any(ax.images[0].get_visible() for ax in audio_cells)   # all missing
    noisy = ex.update(corruption="image: Gaussian noise σ", level=5)
    want = evaluate(models["late"], quality.gaussian_noise(test, 3.0, modality="image"))["accuracy"]
    assert noisy["accuracy"] == pytest.approx(want)
    assert "σ" in ax_curve.get_xlabel() and png_changed(ex, strategy="early")
    with pytest.raises(ValueError, match="at least one trained model"):
        fusion_explorer({}, test)


def test_quality_explorer_is_exactly_the_corruption_pipeline(av_small):
    from mmcourse.train import evaluate
    from mmcourse.widgets import quality_explorer
    from mmcourse.widgets.quality import corrupt

    models, test = av_small
    model = models["early"]
    ex = quality_explorer(model, test, n=120, noise_levels=(0.0, 1.0, 2.0))
    clean = ex.state
    assert clean["counts"].min() == clean["counts"].max()          # ratio 1: balanced
    for ratio, p, missing, k in [(10.0, 0.5, "image", 2), (4.0, 0.3, "audio", 1), (1.0, 1.0, "audio", 0)]:
        state = ex.update(ratio=ratio, p_missing=p, missing=missing, noise=k)
        ref = corrupt(test, (0.0, 1.0, 2.0)[k], ratio, p, noise_modality="image", missing_modality=missing)
        assert state["n"] == len(ref)
        assert state["accuracy"] == pytest.approx(evaluate(model, ref)["accuracy"], abs=1e-9)
        want = np.bincount(ref.tensors["label"].numpy(), minlength=10)
        np.testing.assert_array_equal(state["counts"], want)
        np.testing.assert_allclose(bar_heights(ex.figure.axes[1]), state["recall"])
    imb = ex.update(ratio=20.0, p_missing=0.0)
    n_max = clean["counts"][0]                                       # a long tail from n_max ...
    assert imb["counts"][0] == n_max and imb["counts"][-1] == max(1, round(n_max / 20))  # ... to n_max/20
    assert list(imb["counts"]) == sorted(imb["counts"], reverse=True)
    gone = ex.update(p_missing=1.0, missing="image")
    assert not gone["present"].any()
    assert all(ax.texts[0].get_visible() for ax in ex.figure.axes[2:] if ax.get_visible())
    with pytest.raises(ValueError, match="noise_modality"):
        quality_explorer(model, test, noise_modality="text")


def test_best_f1_threshold():
    from mmcourse import metrics
    from mmcourse.widgets.retrieval import best_f1_threshold

    sim = np.array([[0.9, 0.2, 0.6], [0.1, 0.8, 0.5]])
    relevant = np.array([[True, False, False], [False, True, False]])
    curve = metrics.precision_recall_curve_at_thresholds(sim, relevant, np.linspace(-1, 1, 201))
    theta = best_f1_threshold(curve)
    assert 0.6 <= theta < 0.8                              # exactly the two relevant pairs retrieved
    point = metrics.precision_recall_at_threshold(sim, relevant, theta)
    assert point.precision == 1.0 and point.recall == 1.0


def test_gallery_notebook_and_browser_test_cover_every_explorer():
    import json
    from pathlib import Path

    from test_browser import EXPLORERS

    import mmcourse.widgets as w

    names = sorted(n[: -len("_explorer")] for n in w.__all__ if n.endswith("_explorer"))
    assert sorted(EXPLORERS) == names
    root = Path(__file__).resolve().parents[1]
    nb = json.loads((root / "docs" / "explorers.ipynb").read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    for name in names:
        assert f"{name}_explorer(" in source, f"docs/explorers.ipynb does not show the {name} explorer"
        assert (root / "docs" / "img" / f"explorer-{name}.png").exists()


def test_importing_the_explorers_does_not_import_ipywidgets():
    import subprocess
    import sys

    code = ("import sys, mmcourse.widgets.softmax, mmcourse.widgets.fusion, mmcourse.widgets.quality; "
            "print('ipywidgets' in sys.modules, 'IPython' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
