"""Chapter 14: prefix captioning, the image tokenizer, text to image, guidance, the judges and the
shipped checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmcourse import pretrained
from mmcourse.data import load_shapes
from mmcourse.data.base import ModalDataset
from mmcourse.data.shapes import shapes_vocab
from mmcourse.judges import (
    AttributeJudge,
    attribute_targets,
    clip_score,
    diversity,
    judge_dataset,
    judge_report,
)
from mmcourse.models import count_parameters
from mmcourse.models.guidance import guided_logits, plausible, sample_next
from mmcourse.models.image_tokenizer import PaletteTokenizer, VQAutoencoder, vector_quantize
from mmcourse.models.language_model import TinyCausalDecoder
from mmcourse.models.prefix_captioning import (
    IGNORE,
    PrefixCaptioner,
    PrefixMapper,
    QueryMapper,
    assemble_prefix,
    prefix_attention_mask,
    prefix_targets,
)
from mmcourse.models.retrieval import DualEncoder
from mmcourse.models.text_to_image import FactorisedTextToImage, TextToImage, null_captions, token_dataset
from mmcourse.train import fit

#: calibrated on the shipped checkpoints (see benchmarks/bench_generation.py), with margin
JUDGE_REAL_MIN = 0.9
CLIP_GAIN_MIN = 0.5   # measured: 0.88 at w = 3 (α = 0.05) against -0.05 at w = 0


@pytest.fixture(scope="module")
def shapes():
    return load_shapes(300, 60, 60, image_size=32, seed=3)


def _prefix_model(vocab, k=4, seed=0):
    torch.manual_seed(seed)
    lm = TinyCausalDecoder(len(vocab), 32, 4, 2, 24)
    dual = DualEncoder(len(vocab), 32, width=8, image_features=32, hidden=32)
    return PrefixCaptioner(lm, dual.image_encoder, k=k, vocab=vocab), lm, dual


# -- prefix assembly --------------------------------------------------------------------------
def test_prefix_mask_prefix_sees_prefix_words_see_prefix_and_past():
    mask = prefix_attention_mask(2, 3)
    want = torch.tensor([[1, 1, 0, 0, 0],
                         [1, 1, 0, 0, 0],
                         [1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 0],
                         [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask, want)
    assert torch.equal(prefix_attention_mask(0, 4), torch.ones(4, 4).tril().bool())  # plain causal
    with pytest.raises(ValueError, match="k"):
        prefix_attention_mask(-1, 3)


def test_assemble_prefix_puts_the_prefix_first_and_checks_shapes():
    p, e = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    z, mask = assemble_prefix(p, e)
    assert torch.equal(z[:, :3], p) and torch.equal(z[:, 3:], e) and mask.shape == (8, 8)
    with pytest.raises(ValueError, match="same B and d"):
        assemble_prefix(torch.randn(2, 3, 4), e)


def test_prefix_targets_ignore_the_prefix_and_pads():
    tokens = torch.tensor([[1, 4, 7, 2, 0]])
    assert prefix_targets(tokens, 2).tolist() == [[IGNORE, IGNORE, 4, 7, 2, IGNORE]]
    with pytest.raises(ValueError, match="token ids"):
        prefix_targets(torch.ones(2, 3), 1)


def test_lm_run_embeddings_matches_run_and_mask_none_is_causal():
    torch.manual_seed(0)
    lm = TinyCausalDecoder(12, 16, 2, 2, 10).eval()
    tokens = torch.randint(0, 12, (3, 6))
    ref = lm.run(tokens).logits
    logits, _ = lm.run_embeddings(lm.embed(tokens))
    assert torch.allclose(logits, ref, atol=1e-5)
    logits2, _ = lm.run_embeddings(lm.embed(tokens), prefix_attention_mask(0, 6))
    assert torch.allclose(logits2, ref, atol=1e-5)


def test_prefix_captioner_trains_only_the_mapper_and_its_loss_is_the_caption_ce(shapes):
    vocab = shapes.info["vocab"]
    model, lm, dual = _prefix_model(vocab)
    assert count_parameters(model) == count_parameters(model.mapper)
    frozen = {k: v.clone() for k, v in lm.state_dict().items()}
    conv = dual.image_encoder.features[0].weight.clone()
    batch = shapes.train[:6]
    out = model(batch)
    # the loss is the next-token CE of the caption positions, from the captioner's own logits
    targets = batch["text"][:, 1:]
    ref = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten(), ignore_index=0)
    assert torch.allclose(out.loss, ref, atol=1e-5)
    small = ModalDataset({k: v[:64] for k, v in shapes.train.tensors.items()})
    fit(model, small, epochs=1, batch_size=32, lr=1e-2, progress=False)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in frozen.items())
    assert torch.equal(model.encoder.features[0].weight, conv)
    assert not lm.training  # the frozen LM stays in eval mode
    caps = model.caption(shapes.test.tensors["image"][:4])
    assert len(caps) == 4 and all(isinstance(c, str) for c in caps)


def test_prefix_mapper_hidden_layer_size_and_bad_input():
    grid = torch.randn(3, 64, 16)
    plain = PrefixMapper(16, 8, 4, (8, 8), layers=2)
    deep = PrefixMapper(16, 8, 4, (8, 8), layers=2, hidden=12)
    assert count_parameters(plain) == 2 * (8 * 18 + 8) + 2 * 18
    assert count_parameters(deep) == 2 * 18 + (18 * 12 + 12) + 2 * (8 * 12 + 8)
    assert plain(grid).shape == deep(grid).shape == (3, 8, 8)   # layers * k visual words of size dim
    with pytest.raises(ValueError, match="hidden must be an int >= 0"):
        PrefixMapper(16, 8, 4, (8, 8), hidden=-1)
    expected = r"PrefixMapper expects region features \(batch, 64, 16\), got \(3, 64, 15\)"
    with pytest.raises(ValueError, match=expected):
        plain(torch.randn(3, 64, 15))
    # each of the k = 4 visual words sits at its cell's centre, (x, y) in [-1, 1]², row by row
    assert plain.xy.tolist() == [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]


def test_query_mapper_queries_read_regions_by_attention():
    """Each learned query is a softmax-weighted mix of the regions (checked against a hand-written
    cross-attention with the module's own weights); size: k·h queries plus a k-free part."""
    torch.manual_seed(0)
    grid = torch.randn(3, 16, 10)
    m = QueryMapper(10, 8, 5, (4, 4), layers=2, hidden=12, heads=3).eval()
    out = m(grid)
    assert out.shape == (3, 2 * 5, 8)
    one_query = QueryMapper(10, 8, 1, (4, 4), layers=2, hidden=12, heads=3)
    assert count_parameters(m) - count_parameters(one_query) == 4 * 12
    r = m.proj(m.norm(torch.cat([grid, m.xy.expand(3, 16, 2)], -1)))
    w_q, w_k, w_v = m.attn.in_proj_weight.chunk(3)
    b_q, b_k, b_v = m.attn.in_proj_bias.chunk(3)
    q, kk, v = (x.unflatten(-1, (3, 4)).transpose(1, 2) for x in
                (m.queries.expand(3, 5, 12) @ w_q.T + b_q, r @ w_k.T + b_k, r @ w_v.T + b_v))
    att = ((q @ kk.transpose(-1, -2)) / 2).softmax(-1) @ v
    z = F.gelu(m.out_norm(m.queries + m.attn.out_proj(att.transpose(1, 2).flatten(2))))
    assert torch.allclose(out, torch.cat([lin(z) for lin in m.maps], 1), atol=1e-5)
    with pytest.raises(ValueError, match="k \\(visual words\\) must be an int >= 1"):
        QueryMapper(10, 8, 0, (4, 4))
    with pytest.raises(ValueError, match="QueryMapper expects region features"):
        m(torch.randn(3, 15, 10))


def test_prefix_captioner_takes_a_captioners_encoder_and_a_query_mapper(shapes):
    """Chapter 14 owns its frozen tower: a chapter 08 captioner's encoder works like a dual
    encoder's (``pretrained.image_tower``), and ``mapper="query"`` trains only the mapper."""
    from mmcourse.models.captioning import Captioner
    vocab = shapes.info["vocab"]
    torch.manual_seed(0)
    cap = Captioner(len(vocab), vocab=vocab)
    lm = TinyCausalDecoder(len(vocab), 32, 4, 2, 24)
    model = PrefixCaptioner(lm, pretrained.image_tower(cap), k=6, mapper="query", vocab=vocab)
    assert torch.equal(model.encoder.features[0].weight, cap.encoder.features[0].weight)
    assert isinstance(model.mapper, QueryMapper) and count_parameters(model) == count_parameters(model.mapper)
    out = model(shapes.train[:4])
    assert out.logits.shape[:2] == (4, shapes.train.tensors["text"].shape[1] - 1) and out.loss.isfinite()
    with pytest.raises(ValueError, match="mapper must be 'pool'"):
        PrefixCaptioner(lm, pretrained.image_tower(cap), mapper="mlp")
    with pytest.raises(ValueError, match="has no image encoder"):
        pretrained.image_tower(lm)


def test_prefix_captioner_words_never_leak_into_the_prefix(shapes):
    """Changing a later word cannot change an earlier word's logits (causal over the words)."""
    model, _, _ = _prefix_model(shapes.info["vocab"])
    batch = dict(shapes.train[:2])
    a = model(batch).logits
    text = batch["text"].clone()
    text[:, 4] = 5
    b = model({**batch, "text": text}).logits
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6)


def test_prefix_captioner_bad_input(shapes):
    model, _, _ = _prefix_model(shapes.info["vocab"])
    with pytest.raises(ValueError, match="shape"):
        model({"image": torch.rand(2, 3, 16, 16), "text": shapes.train.tensors["text"][:2]})
    with pytest.raises(TypeError, match="TinyCausalDecoder"):
        PrefixCaptioner(torch.nn.Linear(2, 2), model.encoder)


# -- the tokenizer ------------------------------------------------------------------------------
def test_vector_quantize_matches_the_nearest_neighbour_by_cdist():
    g = torch.Generator().manual_seed(0)
    z, book = torch.randn(4, 5, 6, generator=g), torch.randn(9, 6, generator=g)
    codes, e = vector_quantize(z, book)
    ref = torch.cdist(z.reshape(-1, 6), book).argmin(1).view(4, 5)
    assert torch.equal(codes, ref) and torch.equal(e, book[ref])
    with pytest.raises(ValueError, match="codebook"):
        vector_quantize(z, torch.randn(9, 5))


def test_vq_autoencoder_shapes_and_errors(shapes):
    vq = VQAutoencoder(32, codebook_size=16, code_dim=4, width=8)
    codes = vq.encode(shapes.train.tensors["image"][:5])
    assert codes.shape == (5, 64) and codes.max() < 16
    assert vq.decode(codes).shape == (5, 3, 32, 32)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 16\)"):
        vq.decode(torch.full((1, 64), 16))
    with pytest.raises(ValueError, match="images"):
        vq.encode(torch.rand(2, 3, 28, 28))


def test_palette_tokenizer_keeps_colours_and_coverage():
    from mmcourse.data.shapes import render_scenes
    scenes = [[{"kind": "square", "colour": c, "size": "large", "position": (0.5, 0.5)}]
              for c in ("red", "green", "blue", "yellow", "magenta", "cyan")]
    images = torch.from_numpy(render_scenes(scenes, 32))
    tok = PaletteTokenizer(32)
    codes = tok.encode(images)
    assert codes.shape == (6, 64) and tok.codebook_size == 91
    colours = [sorted({(int(c) - 1) // 15 for c in row if c > 0}) for row in codes]
    assert colours == [[0], [1], [2], [3], [4], [5]]          # one palette colour each, in order
    centre = codes.view(6, 8, 8)[:, 3:5, 3:5]
    assert ((centre - 1) % 15 + 1 == 15).all()                 # the square's middle is fully covered
    recon = tok.reconstruct(images)
    inside = recon[:, :, 14:18, 14:18].mean((2, 3))
    assert torch.allclose(inside, tok.palette, atol=0.02)      # painted in the exact colours
    assert torch.equal(tok.encode(tok.decode(codes)), codes)   # decode then encode: the same tokens
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 91\)"):
        tok.decode(torch.full((1, 64), 91))


def test_patch_tokenizer_fits_patterns_keeps_colours_and_soft_edges():
    from mmcourse.data.shapes import render_scenes
    from mmcourse.models.image_tokenizer import PatchTokenizer
    real = load_shapes(300, 10, 100, image_size=32, seed=5).train.tensors["image"]
    tok = PatchTokenizer(32, patterns=32).fit(real, seed=0)
    assert tok.codebook_size == 1 + 32 * 6
    assert torch.equal(tok.codebook, PatchTokenizer(32, patterns=32).fit(real, seed=0).codebook)  # seeded
    scenes = [[{"kind": "square", "colour": c, "size": "large", "position": (0.5, 0.5)}]
              for c in ("red", "green", "blue", "yellow", "magenta", "cyan")]
    images = torch.from_numpy(render_scenes(scenes, 32))
    codes = tok.encode(images)
    colours = [sorted({(int(c) - 1) // 32 for c in row if c > 0}) for row in codes]
    assert colours == [[0], [1], [2], [3], [4], [5]]          # one palette colour each, in order
    recon = tok.reconstruct(images)
    assert torch.allclose(recon[:, :, 14:18, 14:18].mean((2, 3)), tok.palette, atol=0.05)
    # finer than the palette tokenizer's half-resolution, hard-edged copies
    held_out = load_shapes(10, 10, 200, image_size=32, seed=6).test.tensors["image"]
    mse = (tok.reconstruct(held_out) - held_out).pow(2).mean()
    assert mse < 0.85 * (PaletteTokenizer(32).reconstruct(held_out) - held_out).pow(2).mean()
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 193\)"):
        tok.decode(torch.full((1, 64), 193))
    with pytest.raises(ValueError, match="PatchTokenizer expects images"):
        tok.encode(torch.zeros(2, 3, 16, 16))


@pytest.mark.parametrize("make", [lambda: VQAutoencoder(32, codebook_size=16, code_dim=4, width=8),
                                  lambda: PaletteTokenizer(32)], ids=["VQAutoencoder", "PaletteTokenizer"])
def test_tokenizers_name_themselves_and_what_they_expect(make):
    tok = make()
    name = type(tok).__name__
    with pytest.raises(ValueError, match=rf"{name}\.decode expects codes \(batch, 64\) int, got \(2, 63\)"):
        tok.decode(torch.zeros(2, 63, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"{name}\.decode expects codes \(batch, 64\) int, got \(2, 64\)"):
        tok.decode(torch.zeros(2, 64))                        # float codes
    expected = rf"{name} expects images \(batch, 3, 32, 32\), got \(2, 3, 28, 28\)"
    with pytest.raises(ValueError, match=expected):
        tok.encode(torch.rand(2, 3, 28, 28))


@pytest.mark.slow
def test_vq_autoencoder_learns_to_reconstruct(shapes):
    torch.manual_seed(0)
    vq = VQAutoencoder(32, codebook_size=32, code_dim=8, width=16)
    images = shapes.train.tensors["image"]
    vq.init_codebook(images[:200])
    before = (vq.reconstruct(images[:100]) - images[:100]).pow(2).mean().item()
    fit(vq, ModalDataset({"image": images}), epochs=6, batch_size=32, lr=3e-3, progress=False)
    after = (vq.eval().reconstruct(images[:100]) - images[:100]).pow(2).mean().item()
    assert after < 0.5 * before, (before, after)


# -- text to image and guidance --------------------------------------------------------------
def _t2i(seed=0):
    torch.manual_seed(seed)
    return TextToImage(20, 16, grid=4, dim=32, heads=4, layers=2, text_len=12).eval()


def test_text_to_image_is_causal_and_its_kv_cache_matches_the_full_pass():
    model = _t2i()
    captions = torch.tensor([[1, 4, 5, 7, 16, 2, 0, 0, 0, 0, 0, 0]] * 2)
    codes = torch.randint(0, 16, (2, 16))
    text = model.encode_text(captions)
    inputs = torch.cat([torch.full((2, 1), model.bos), codes[:, :-1]], 1)
    full = model.code_logits(inputs, text)
    changed = inputs.clone()
    changed[:, 9:] = 3
    assert torch.allclose(model.code_logits(changed, text)[:, :9], full[:, :9], atol=1e-6)
    step = model.incremental(text)
    cached = torch.stack([step(inputs[:, t]) for t in range(16)], 1)
    assert torch.allclose(cached, full, atol=1e-5)


def test_guided_logits_is_the_geometric_extrapolation():
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(3, 7, generator=g), torch.randn(3, 7, generator=g)
    assert torch.allclose(guided_logits(c, u, 1.0), c) and torch.equal(guided_logits(c, u, 0.0), u)
    w = 2.5
    p = guided_logits(c, u, w).softmax(-1)
    ref = u.softmax(-1) ** (1 - w) * c.softmax(-1) ** w
    assert torch.allclose(p, ref / ref.sum(-1, keepdim=True), atol=1e-5)
    with pytest.raises(ValueError, match="w must be"):
        guided_logits(c, u, -1.0)
    assert torch.equal(sample_next(c, 0.0), c.argmax(-1))


def test_generate_without_guidance_is_plain_conditional_sampling_and_guidance_changes_it():
    model = _t2i()
    captions = torch.tensor([[1, 4, 5, 7, 16, 2, 0, 0, 0, 0, 0, 0]] * 3)
    a = model.generate(captions, 1.0, generator=torch.Generator().manual_seed(1))
    # by hand: sample each code from softmax of the conditional logits
    gen = torch.Generator().manual_seed(1)
    codes = torch.full((3, 1), model.bos)
    text = model.encode_text(captions)
    for _ in range(16):
        logits = model.code_logits(codes, text)[:, -1]
        codes = torch.cat([codes, torch.multinomial(logits.softmax(-1), 1, generator=gen)], 1)
    assert torch.equal(a, codes[:, 1:])
    greedy = model.generate(captions, 1.0, temperature=0)
    assert (greedy == greedy[0]).all()  # same caption, no randomness: same image
    # guided greedy by hand: argmax of u + w (c - u), the null caption giving u
    codes = torch.full((1, 1), model.bos)
    cond, null = model.encode_text(captions[:1]), model.encode_text(null_captions(1, 12))
    for _ in range(16):
        c, u = model.code_logits(codes, cond)[:, -1], model.code_logits(codes, null)[:, -1]
        codes = torch.cat([codes, (u + 4.0 * (c - u)).argmax(-1, keepdim=True)], 1)
    assert torch.equal(model.generate(captions[:1], 4.0, temperature=0), codes[:, 1:])


def test_plausibility_constraint_keeps_the_conditional_models_candidates():
    """``V_α = {v : p_c(v) >= α max p_c}``: everything else is -inf; α = 0 keeps all; α = 1 keeps
    the conditional argmax only, so guided sampling under it is greedy conditional decoding."""
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(4, 9, generator=g) * 2, torch.randn(4, 9, generator=g)
    guided = guided_logits(c, u, 3.0)
    p = c.softmax(-1)
    keep = p >= 0.2 * p.amax(-1, keepdim=True)
    out = plausible(guided, c, 0.2)
    assert torch.equal(torch.isinf(out), ~keep) and torch.equal(out[keep], guided[keep])
    assert torch.equal(plausible(guided, c, 0.0), guided)
    with pytest.raises(ValueError, match="alpha"):
        plausible(guided, c, 1.5)
    model = _t2i()
    captions = torch.tensor([[1, 4, 5, 7, 16, 2, 0, 0, 0, 0, 0, 0]] * 2)
    only_best = model.generate(captions, 3.0, plausibility=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(only_best, model.generate(captions, 1.0, temperature=0))


def test_caption_dropout_only_while_training():
    model = _t2i()
    model.p_uncond = 0.999
    batch = {"text": torch.tensor([[1, 4, 5, 7, 16, 2] + [0] * 6] * 4),
             "codes": torch.randint(0, 16, (4, 16))}
    null = {"text": null_captions(4, 12), "codes": batch["codes"]}
    assert not torch.allclose(model(batch).loss, model(null).loss)       # eval: the caption counts
    model.train()
    assert torch.allclose(model(batch).loss, model(null).loss, atol=1e-6)  # dropped


def test_token_dataset_and_bad_codes(shapes):
    vq = VQAutoencoder(32, codebook_size=16, code_dim=4, width=8)
    data = token_dataset(vq, shapes.train)
    assert data.tensors["codes"].shape == (len(shapes.train), 64)
    model = TextToImage(20, 16, grid=8, dim=32, heads=4, layers=1)
    with pytest.raises(ValueError, match="codes"):
        model({"text": data.tensors["text"][:2], "codes": torch.full((2, 64), 99)})


# -- judges ----------------------------------------------------------------------------------
def test_attribute_targets_follow_caption_order():
    scene = [{"kind": "cross", "colour": "red", "size": "large", "position": (0.7, 0.3)},
             {"kind": "circle", "colour": "blue", "size": "small", "position": (0.2, 0.3)}]
    # canonical order: the circle (x+y = 0.5) first, then the cross, left of it
    assert attribute_targets([scene]).tolist() == [[1, 0, 2, 0, 1, 0, 3, 1]]
    assert attribute_targets([scene[:1]]).tolist() == [[0, 1, 0, 3, -1, -1, -1, -1]]


class _Oracle(AttributeJudge):
    def __init__(self, captions):
        super().__init__()
        self.captions = captions

    def read(self, images, batch_size=500):
        return list(self.captions)


def test_judge_report_verdicts():
    want = ["a small red circle", "a small red circle left of a large blue square",
            "a small red circle above a large blue square"]
    read = ["a large red circle", "a small red circle above a large blue square",
            "a small red circle"]
    r = judge_report(_Oracle(read), torch.zeros(3, 3, 32, 32), want)
    assert r["colour_kind"] == pytest.approx(2 / 3)   # the third reads one object only
    assert r["size"] == pytest.approx(1 / 3)
    assert r["relation"] == 0.0 and r["caption"] == 0.0
    assert judge_report(_Oracle(want), torch.zeros(3, 3, 32, 32), want)["caption"] == 1.0


def test_judge_report_scores_colour_and_kind_alone():
    want = ["a small red circle", "a small red circle", "a small red circle", "a small red circle"]
    read = ["a small red square", "a small blue circle", "a large red circle",
            "a small red circle above a small red circle"]
    r = judge_report(_Oracle(read), torch.zeros(4, 3, 32, 32), want)
    assert r["colour"] == pytest.approx(2 / 4) and r["kind"] == pytest.approx(2 / 4)   # two objects: wrong
    assert r["colour_kind"] == pytest.approx(1 / 4)


@pytest.mark.slow
def test_attribute_judge_learns_from_real_scenes():
    data = load_shapes(3000, 200, 300, image_size=32, seed=5)
    torch.manual_seed(0)
    judge = AttributeJudge(32, width=16, features=64)
    fit(judge, judge_dataset(data.train), epochs=6, batch_size=64, lr=3e-3, progress=False)
    from mmcourse.judges import judge_accuracy
    acc = judge_accuracy(judge.eval(), data.test)
    # it learns sizes and relations well; the kinds of small shapes, position by position through
    # its dense layer, much more slowly (why the chapter judges with chapter 08's captioner)
    assert acc["size"] > 0.8 and acc["relation"] > 0.8, acc   # chance: 1/2 (one object), 1/4


def test_clip_score_and_diversity(shapes):
    dual = DualEncoder(20, 16, width=8, image_features=16, hidden=16)
    images, text = shapes.test.tensors["image"][:4], shapes.test.tensors["text"][:4]
    s = clip_score(dual, images, text)
    ref = (dual.encode_image(images) * dual.encode_text(text)).sum(-1)
    assert torch.allclose(s, ref, atol=1e-6)
    same = diversity(images[:1].expand(3, -1, -1, -1).clone(), torch.zeros(3, 4, dtype=torch.long))
    assert same == {"pixel_distance": 0.0, "distinct": 1 / 3}
    assert diversity(images)["pixel_distance"] > 0
    with pytest.raises(ValueError, match="n >= 2"):
        diversity(images[:1])


# -- checkpoints -------------------------------------------------------------------------------
def test_vocab_kwarg_roundtrip_and_tamper_detection(tmp_path):
    from mmcourse.models.captioning import Captioner
    vocab = shapes_vocab()
    model = Captioner(len(vocab), vocab=vocab)
    pretrained.save(model, "tiny", {"vocab_size": len(vocab), "vocab": vocab}, {"note": "x"}, folder=tmp_path)
    loaded = pretrained.load("tiny", tmp_path)
    assert loaded.vocab.itos == vocab.itos and pretrained.metadata("tiny", tmp_path)["note"] == "x"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    file = tmp_path / "tiny.pt"
    file.write_bytes(file.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(pretrained.ChecksumMismatch, match="does not match its SHA-256"):
        pretrained.load("tiny", tmp_path)


def test_chapter_14_checkpoints_do_not_shadow_other_chapters():
    """Every shipped checkpoint belongs to exactly one chapter by its name: chapter 11's
    ``shapes_clip``, chapter 13's ``easy_vqa_*`` / ``shapes_qa_*``, chapter 14's ``gen_*``."""
    owners = {"11": lambda n: n == "shapes_clip",
              "13": lambda n: n.startswith(("easy_vqa_", "shapes_qa_")),
              "14": lambda n: n.startswith("gen_")}
    names = pretrained.available()
    assert "shapes_clip" in names and any(n.startswith("gen_") for n in names), names
    claimed = {n: [ch for ch, own in owners.items() if own(n)] for n in names}
    assert all(len(chapters) == 1 for chapters in claimed.values()), claimed


@pytest.mark.parametrize("name", ["gen_clip", "gen_lm", "gen_captioner08", "gen_t2i"])
def test_shipped_checkpoints_load(name):
    model = pretrained.load(name)
    assert not model.training and pretrained.metadata(name)["seconds"] > 0


@pytest.mark.parametrize("k", [64, 4, 1])
def test_shipped_prefix_mappers_load_over_the_frozen_models(k):
    model = pretrained.load_prefix_captioner(f"gen_prefix_k{k}")
    assert model.k == k and count_parameters(model) == count_parameters(model.mapper)
    # chapter 14 owns every checkpoint its captioner freezes (chapter 11's shapes_clip is retrained
    # on its own schedule)
    meta = pretrained.metadata(f"gen_prefix_k{k}")
    assert meta["image_encoder"].startswith("gen_") and meta["language_model"].startswith("gen_")
    assert count_parameters(model) <= 0.2 * count_parameters(pretrained.load("gen_captioner08"))
    with pytest.raises(ValueError, match="not a PrefixMapper"):
        pretrained.load_prefix_captioner("gen_lm")


@pytest.fixture(scope="module")
def real_scenes():
    return load_shapes(10, 10, 200, image_size=32, seed=11)


def test_shipped_judge_reads_real_scenes(real_scenes):
    from mmcourse.judges import CaptionerJudge, judge_accuracy
    acc = judge_accuracy(CaptionerJudge(pretrained.load("gen_captioner08")), real_scenes.test)
    assert acc["colour_kind"] > JUDGE_REAL_MIN, acc


def test_shipped_generator_draws_what_guidance_asks_for():
    """One-object captions: without the caption (w = 0) almost nothing matches; without guidance
    (w = 1) most samples do; guidance under the plausibility constraint (w = 3, α = 0.05, chosen on
    validation) reaches the issue's 0.9 (measured on the test protocol: 0.021 / 0.891 / 0.984 at 4
    samples, see benchmarks/bench_generation.py), and its CLIP score is far above w = 0's."""
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.judges import CaptionerJudge, all_single_object_captions, generation_report
    t2i, vq = pretrained.load("gen_t2i"), pretrained.load("gen_tokenizer")
    assert pretrained.metadata("gen_t2i")["tokenizer"] == "gen_tokenizer"
    judge = CaptionerJudge(pretrained.load("gen_captioner08"))
    clip = pretrained.load("gen_clip")
    caps = all_single_object_captions()
    report = {(w, a): generation_report(t2i, vq, judge, caps, shapes_vocab(), samples=2, guidance=w,
                                        plausibility=a, seed=0, dual_encoder=clip)
              for w, a in ((0.0, 0.0), (1.0, 0.0), (3.0, 0.05))}
    blind, plain, guided = report[0.0, 0.0], report[1.0, 0.0], report[3.0, 0.05]
    assert blind["colour_kind"] < 0.1 and plain["colour_kind"] > 0.8, (blind, plain)
    assert guided["colour_kind"] > 0.88 and guided["colour"] > 0.95, guided
    assert guided["clip_score"] > blind["clip_score"] + CLIP_GAIN_MIN, (guided, blind)


# -- the explorer ------------------------------------------------------------------------------
def test_generation_explorer_updates_and_reports_bad_captions():
    pytest.importorskip("ipywidgets")
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.widgets.generation import generation_explorer

    torch.manual_seed(0)
    t2i = TextToImage(20, 16, grid=8, dim=16, heads=2, layers=1, text_len=12)
    vq = VQAutoencoder(32, codebook_size=16, code_dim=4, width=8)
    ex = generation_explorer(t2i, vq, AttributeJudge(32, width=8, features=16), shapes_vocab(),
                             ["a small red circle", "a large blue square above a small red cross"], samples=3)
    state = ex.update(caption="a large blue square above a small red cross", guidance=0.0, temperature=0.5)
    assert state["caption"] == "a large blue square above a small red cross" and len(state["read"]) == 3
    assert 0 <= state["colour_kind"] <= 1 and "judge" in state["html"]
    constrained = generation_explorer(t2i, vq, AttributeJudge(32, width=8, features=16), shapes_vocab(),
                                      ["a small red circle"], samples=2, plausibility=0.1)
    assert "α = 0.1" in constrained.update(guidance=3.0)["html"]
    state = ex.update(typed="a purple circle")
    assert "error" in state and "purple" in state["error"]
    assert ex.update(typed="").get("error") is None


def test_factorised_text_to_image_is_a_distribution_over_codes_from_two_heads():
    """``log p(1 + K·colour + pattern) = log p_col(colour) + log p_pat(pattern)``, background from
    the colour head alone; normalised; the KV cache agrees; an embedding is colour + pattern."""
    torch.manual_seed(0)
    m = FactorisedTextToImage(20, colours=3, patterns=5, grid=4, dim=16, heads=2, layers=1).eval()
    text = torch.tensor([[1, 4, 5, 7, 13, 2]] * 2)
    codes = torch.randint(0, 16, (2, 16))
    out = m({"text": text, "codes": codes})
    assert out.logits.shape == (2, 16, 16)
    assert torch.allclose(out.logits.exp().sum(-1), torch.ones(2, 16), atol=1e-5)
    h = torch.randn(4, 16)
    col, pat = m.head.colour(h).log_softmax(-1), m.head.pattern(h).log_softmax(-1)
    logp = m.head(h)
    assert torch.allclose(logp[:, 0], col[:, 0])
    assert torch.allclose(logp[:, 1 + 5 * 2 + 3], col[:, 3] + pat[:, 3])
    e = m.code_embed(torch.tensor([1 + 5 * 1 + 4]))
    assert torch.allclose(e, m.code_embed.colour.weight[2] + m.code_embed.pattern.weight[4])
    inputs = torch.cat([torch.full((2, 1), m.bos), codes[:, :4]], 1)
    step = m.incremental(m.encode_text(text))
    cached = torch.stack([step(c) for c in inputs.T], 1)
    assert torch.allclose(cached, m.code_logits(inputs, m.encode_text(text)), atol=1e-4)
    assert m.generate(text, guidance=3.0, generator=torch.Generator().manual_seed(0)).max() < 16


def test_factorised_loss_is_the_cross_entropy_of_its_code_distribution():
    """The two-head loss (colour CE + pattern CE on object codes) equals the mean cross-entropy
    of the ``1 + C K`` code log-probabilities it returns, and its gradient reaches both heads."""
    torch.manual_seed(0)
    m = FactorisedTextToImage(20, colours=3, patterns=5, grid=4, dim=16, heads=2, layers=1).eval()
    text = torch.tensor([[1, 4, 5, 7, 13, 2]] * 3)
    codes = torch.randint(0, 16, (3, 16))
    codes[0, :6] = 0                                        # background codes too
    out = m({"text": text, "codes": codes})
    assert torch.allclose(out.loss, F.cross_entropy(out.logits.flatten(0, 1), codes.flatten()), atol=1e-5)
    out.loss.backward()
    assert m.head.colour.weight.grad.abs().sum() > 0 and m.head.pattern.weight.grad.abs().sum() > 0


def _majority_colour(codes: torch.Tensor, patterns: int) -> list[int]:
    """The most frequent palette colour among each row's object codes (-1: none)."""
    out = []
    for row in codes:
        fg = row[row > 0]
        out.append(int(((fg - 1) // patterns).mode().values) if len(fg) else -1)
    return out


def test_factorised_text_to_image_learns_to_read_the_caption():
    """Trained for a few hundred steps on one-object scenes (their PatchTokenizer codes), the
    generator reads the caption: the validation loss with the captions is lower than with the
    null caption by > 0.03 nats/code (a mean over 64 codes, most of them background; measured
    0.055), and the colour it paints is the caption's in >= 70 % of the samples (chance 1/6;
    measured 1.0)."""
    from mmcourse.data.shapes import COLOUR_NAMES
    from mmcourse.models.captioning import encode_captions
    from mmcourse.models.image_tokenizer import PatchTokenizer

    data = load_shapes(1200, 200, 0, image_size=32, max_shapes=1, seed=4)
    tok = PatchTokenizer(32, patterns=16).fit(data.train.tensors["image"], seed=0)
    train, val = token_dataset(tok, data.train), token_dataset(tok, data.val)
    torch.manual_seed(0)
    model = FactorisedTextToImage(20, colours=6, patterns=16, grid=8, dim=32, heads=2, layers=1,
                                  p_uncond=0.15)
    fit(model, train, epochs=8, batch_size=32, lr=3e-3, progress=False)
    model.eval()
    with torch.no_grad():
        cond = model(val.tensors).loss.item()
        blank = null_captions(*val.tensors["text"].shape)
        null = model({"text": blank, "codes": val.tensors["codes"]}).loss.item()
    assert cond < null - 0.03, (cond, null)
    captions = [f"a large {c} square" for c in COLOUR_NAMES for _ in range(4)]
    ids = F.pad(encode_captions(captions, shapes_vocab()), (0, 12 - 6))
    codes = model.generate(ids, guidance=1.0, generator=torch.Generator().manual_seed(0))
    got = _majority_colour(codes, 16)
    want = [COLOUR_NAMES.index(c.split()[2]) for c in captions]
    assert sum(a == b for a, b in zip(got, want)) / len(want) >= 0.7, (got, want)
