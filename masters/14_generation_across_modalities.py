# %% [markdown]
# # Exercise 14 — Prefix assembly, guided sampling and what guidance buys
#
# Chapter 14 conditions a *frozen* language model on an image by putting `k` "visual words"
# $P_1 .. P_k$ before the caption's token embeddings, and generates images from captions with an
# autoregressive model over image tokens, sharpened by classifier-free guidance. You write the
# two pieces that make the first work (the input sequence with its attention mask, and the
# training targets) and the guided distribution of the second, then measure with the package
# what guidance buys on the chapter's shipped generator.
#
# **How you are graded.** `check(...)` runs *public* cases; the grader compares your functions
# on *hidden* cases (other shapes, no prefix at all, other pad ids, large logits, other seeds)
# with the package's implementation. Only `import`s, `def`s and constants are taken from your
# notebook.

# %%
import torch
import torch.nn.functional as F

from mmcourse.config import seed_everything
from mmcourse.grading import checks_for

seed_everything(0)
check = checks_for("14_generation_across_modalities")

# %% [markdown]
# ## q1 (3 points): `assemble_prefix(prefix, token_embeddings)`
#
# `prefix: (B, k, d)` (the mapped image features), `token_embeddings: (B, T, d)` (the caption's
# token + position embeddings). Return `(z, mask)`:
#
# * `z: (B, k + T, d)`, the prefix **first**, then the caption;
# * `mask: (k + T, k + T)` bool, `mask[i, j]` = position `i` may attend to position `j`: every
#   position reads the whole prefix (`j < k`); a word reads the words up to itself
#   (`k <= j <= i`); the prefix never reads a word.
#
# Watch out: with `k = 0` (no prefix) the mask must be the plain causal mask; the prefix rows
# are *not* causal among themselves (they see each other in both directions).

# %%
def assemble_prefix(prefix, token_embeddings):
    """z = [P ; E x] and its attention mask."""
    ### BEGIN SOLUTION
    k, t = prefix.shape[1], token_embeddings.shape[1]
    z = torch.cat([prefix, token_embeddings], dim=1)
    i = torch.arange(k + t)[:, None]
    j = torch.arange(k + t)[None, :]
    return z, (j < k) | ((j >= k) & (j <= i))
    ### END SOLUTION


# %%
check("q1", assemble_prefix)

# %% [markdown]
# ## q2 (2 points): `prefix_targets(tokens, k, pad_id)`
#
# `tokens: (B, L)` caption ids `<bos> .. <eos> <pad> ..`. The model reads
# `z = [P ; E tokens[:, :-1]]` (length `k + L - 1`) and position `k + t` predicts
# `tokens[:, t + 1]`. Return the targets `(B, k + L - 1)` int64: `-100` (cross-entropy's
# `ignore_index`) at the `k` prefix positions and wherever the next token is `pad_id`, else the
# next token. Watch out: the loss must never ask a prefix position to predict anything.

# %%
def prefix_targets(tokens, k, pad_id):
    """-100 on the prefix and on pads, else the next token."""
    ### BEGIN SOLUTION
    nxt = tokens[:, 1:].masked_fill(tokens[:, 1:] == pad_id, -100)
    return torch.cat([torch.full((tokens.shape[0], k), -100, dtype=torch.long), nxt.long()], dim=1)
    ### END SOLUTION


# %%
check("q2", prefix_targets)

# %% [markdown]
# ## q3 (2 points): `guided_probs(cond, uncond, w, temperature)`
#
# Classifier-free guidance: from conditional logits $\ell_c$ and unconditional logits $\ell_u$
# (same shape, classes on the last dimension) return the sampling distribution
# $\mathrm{softmax}\big((\ell_u + w(\ell_c - \ell_u)) / \tau\big)$. Check: $w = 1$ gives the
# conditional distribution, $w = 0$ the unconditional one. Watch out for large logits (use a
# stable softmax).

# %%
def guided_probs(cond, uncond, w, temperature):
    """softmax((u + w (c - u)) / τ)."""
    ### BEGIN SOLUTION
    logits = uncond.double() + w * (cond.double() - uncond.double())
    return F.softmax(logits / temperature, dim=-1)
    ### END SOLUTION


# %%
check("q3", guided_probs)

# %% [markdown]
# ## q4 (3 points): an experiment — `guided_scene_accuracy(w, n, seed)`
#
# Measure what guidance buys on real generations. Load the chapter's shipped text-to-image model
# `t2i = mmcourse.pretrained.load("gen_t2i")` and sample, **with your `guided_probs`**, `n` scenes
# for each of the 48 one-object captions `mmcourse.judges.all_single_object_captions()` (each
# caption repeated `n` times in a row, so `B = 48 n`):
#
# 1. `ids = encode_captions(captions, shapes_vocab())` (`mmcourse.models.captioning`,
#    `mmcourse.data.shapes`), padded with 0 on the right to `t2i.text_len` columns;
# 2. one batch of `2B` rows, the captions then `null_captions(B, t2i.text_len)` (the unconditional
#    half, `mmcourse.models.text_to_image`): `step = t2i.incremental(t2i.encode_text(both))`;
# 3. `codes` starts as a `(2B, 1)` column of `t2i.bos`; `t2i.n_codes` times: `logits =
#    step(codes[:, -1]).float()`, `probs = guided_probs(logits[:B], logits[B:], w, 1.0)`, one draw
#    per row `torch.multinomial(probs, 1, generator=g)` with **one** `g =
#    torch.Generator().manual_seed(seed)` for the whole loop, and the draw appended to **both**
#    halves (the unconditional pass must see the same image so far);
# 4. paint `codes[:B, 1:]` with the chapter's tokenizer (`tokenizer.decode`, the stub loads
#    `gen_tokenizer`) and judge them:
#    `judge_report(CaptionerJudge(mmcourse.pretrained.load("gen_captioner08")), images,
#    captions)["colour_kind"]` (`mmcourse.judges`); return it as a float.
#
# Work under `torch.no_grad()` and `torch.set_num_threads(1)` (the grader's sandbox runs one
# thread; about 2 s a call). Graded within 0.05 of the reference on other seeds, at `w = 0, 1, 2,
# 3` with `n = 3`. Watch out: appending the draw only to the conditional half, or drawing from
# the conditional logits alone, gives other scenes. Compare `w = 1` and `w = 3`: past a point,
# plain guidance hurts (f1 asks why).

# %%
def guided_scene_accuracy(w, n, seed):
    """Judge's colour+kind accuracy of n guided samples per one-object caption."""
    from mmcourse import pretrained
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.judges import CaptionerJudge, all_single_object_captions, judge_report
    from mmcourse.models.captioning import encode_captions
    from mmcourse.models.text_to_image import null_captions

    torch.set_num_threads(1)
    t2i, tokenizer = pretrained.load("gen_t2i"), pretrained.load("gen_tokenizer")
    ### BEGIN SOLUTION
    captions = [c for c in all_single_object_captions() for _ in range(n)]
    ids = encode_captions(captions, shapes_vocab())                    # step 1
    ids = F.pad(ids, (0, t2i.text_len - ids.shape[1]))
    b = len(ids)
    g = torch.Generator().manual_seed(seed)                            # one generator, step 3
    with torch.no_grad():
        step = t2i.incremental(t2i.encode_text(torch.cat([ids, null_captions(b, t2i.text_len)])))
        codes = torch.full((2 * b, 1), t2i.bos, dtype=torch.long)
        for _ in range(t2i.n_codes):
            logits = step(codes[:, -1]).float()                        # step 3
            probs = guided_probs(logits[:b], logits[b:], w, 1.0).float()
            nxt = torch.multinomial(probs, 1, generator=g)
            codes = torch.cat([codes, nxt.repeat(2, 1)], dim=1)
        images = tokenizer.decode(codes[:b, 1:])                       # step 4
        judge = CaptionerJudge(pretrained.load("gen_captioner08"))
        return float(judge_report(judge, images, captions)["colour_kind"])
    ### END SOLUTION


# %%
check("q4", guided_scene_accuracy)

# %% [markdown] free-response f1 2
# ## f1 (2 points, free response)
#
# Compare `w = 0`, `w = 1` and `w = 3` in q4: the caption is matched almost never without it, most
# of the time with it, and *less* often again with plain guidance at `w = 3` (the chapter shows
# broken outlines and stray patches). Explain both in terms of
# $\mathrm{softmax}(\ell_w) \propto p_u^{1-w} p_c^{w}$, say how the chapter's *plausibility
# constraint* repairs the second, and what guidance costs: which of the chapter's other
# measurements gets worse as `w` grows, and why?

# %% [markdown] answer f1
# At `w = 0` the samples come from the unconditional model, so a one-object caption is matched
# only by chance (about 1 in 24 colour-kind pairs). Raising `w` multiplies each token's
# probability by $(p_c / p_u)^{w-1}$: tokens that the caption makes *more* likely than they are
# a priori are boosted. That ratio is reliable for the tokens the models agree matter (the
# caption's colour where the object starts) but is mostly noise in the tail, where both models
# give a token almost no probability and the unconditional one a little less: at `w = 3` such
# tokens are boosted by the square of a noisy ratio and win now and then, so a patch of the
# wrong shape breaks an outline or a stray patch becomes a second object. The plausibility
# constraint draws only among tokens with $p_c \ge \alpha \max p_c$, so guidance re-weights the
# conditional model's own candidates and can no longer promote the tail. The cost is diversity:
# the distribution is sharpened toward the caption's most typical rendering, so samples of one
# caption become more alike (fewer distinct token grids, smaller pixel distance).

# %% [markdown] rubric f1
# 1 point: explains the boost of tokens with $p_c > p_u$ (ratio or "extrapolates away from the
# unconditional model"), noting that `w = 0` ignores the caption, and why a large `w` promotes
# unlikely tail tokens (noisy ratios, artefacts) which the constraint excludes. 1 point: names
# the loss of diversity (samples more alike / less varied), with a reason (sharper distribution).

# %% summary
check.summary()
