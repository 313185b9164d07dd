"""Reports: a trained model run over a whole split and scored with ``mmcourse.metrics``.

They sit beside the metrics, not in ``mmcourse.models``: a model never imports evaluation code.

* ``caption_report``: decode every image and score the captions (exact match, BLEU, CIDEr-D);
* ``retrieval_report``: rank every caption for every image and back (Recall@K, median rank, mAP);
  ``retrieval_scores`` does the same from embeddings made by any method (e.g. CCA);
* ``winoground_scores``: the text, image and group scores of a compositional probe.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse import metrics
from mmcourse.data.base import ModalDataset
from mmcourse.data.text import Vocab
from mmcourse.metrics import bleu, cider_d
from mmcourse.models.captioning import CaptionModel
from mmcourse.models.retrieval import DualEncoder, embed_dataset, embed_pairs, split_tensors
from mmcourse.tensors import model_device

__all__ = ["WINOGROUND_CHANCE", "caption_report", "exact_match_by_novelty", "retrieval_report",
           "retrieval_scores", "winoground_from_similarity", "winoground_scores"]


@torch.no_grad()
def caption_report(model: CaptionModel, split: ModalDataset, method: str = "greedy", *,
                   vocab: Vocab | None = None, batch_size: int = 250, return_captions: bool = False,
                   **kwargs) -> dict:
    """Caption every image of ``split`` and compare with its reference ``meta["caption"]``:

    * ``exact_match``: ``(1/N) Σ_i [ĉ_i = c_i]`` (Shapes captions are canonical: one is right);
    * ``bleu1`` .. ``bleu4``: corpus BLEU (``mmcourse.metrics.bleu``);
    * ``cider_d``: CIDEr-D (``mmcourse.metrics.cider_d``; at most 10);
    * ``mean_log_prob``: the mean ``log p(ĉ_i | I_i)`` of the decoded captions;
    * ``captions`` (with ``return_captions=True``): the decoded strings.
    """
    if not isinstance(split, ModalDataset) or "image" not in split or "caption" not in split.meta:
        raise ValueError("caption_report needs a ModalDataset with an 'image' tensor and a 'caption' "
                         f"meta list (a Shapes split), got {split!r}")
    vocab = model._vocab(vocab)
    dev = model_device(model)
    hypotheses, log_probs = [], []
    images = split.tensors["image"]
    for start in range(0, len(split), batch_size):
        out = model.decode(images[start:start + batch_size].to(dev), method, **kwargs)
        hypotheses += [vocab.decode(row) for row in out.tokens.tolist()]
        log_probs.append(out.log_prob.cpu())
    references = list(split.meta["caption"])
    report = {
        "n": len(references),
        "method": method,
        "exact_match": sum(h == r for h, r in zip(hypotheses, references)) / len(references),
        **bleu([[r] for r in references], hypotheses),
        "cider_d": float(cider_d([[r] for r in references], hypotheses)),
        "mean_log_prob": torch.cat(log_probs).mean().item(),
    }
    if return_captions:
        report["captions"] = hypotheses
    return report


def retrieval_report(model: DualEncoder, split, ks: tuple[int, ...] = (1, 5, 10),
                     batch_size: int = 512, queries=None) -> dict[str, float]:
    """Rank every caption for every image (``i2t``) and every image for every caption
    (``t2i``) of a split, with the semantic match ``relevant = labels[:, None] == labels[None, :]``
    (any scene with the same caption is a correct answer).

    Returns ``{"i2t_R@1", "i2t_R@5", "i2t_R@10", "i2t_median_rank", "i2t_mAP"}``, the same for
    ``t2i``, and ``"n"``. Ties count against the model (``mmcourse.metrics``' pessimistic rule).
    ``queries`` (optional) restricts the queries to some scenes, see ``retrieval_scores``.
    """
    (labels,) = split_tensors(split, ("label",), "retrieval_report")
    image_emb, text_emb = embed_dataset(model, split, batch_size)
    return retrieval_scores(image_emb, text_emb, labels, ks, queries=queries)


def retrieval_scores(image_emb, text_emb, labels, ks: tuple[int, ...] = (1, 5, 10),
                     queries=None) -> dict[str, float]:
    """``retrieval_report`` from embeddings already computed by any method (a dual encoder,
    CCA, ...): ``image_emb`` and ``text_emb`` ``(N, d)`` (scene ``i``'s image and caption, compared
    by the dot product, so pass unit vectors for cosine similarity), ``labels`` ``(N,)`` the
    caption ids (same id = a correct answer).

    ``queries``: a boolean mask ``(N,)`` or a sequence of indices; only those scenes' images
    (``i2t``) and captions (``t2i``) are asked, against the *whole* database of ``N`` items
    (e.g. the test scenes whose caption also occurs in training). ``None``: every scene.
    ``"n"`` is the number of queries.
    """
    image_emb, text_emb = torch.as_tensor(image_emb).float(), torch.as_tensor(text_emb).float()
    labels = torch.as_tensor(labels)
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape or labels.shape != image_emb.shape[:1]:
        raise ValueError("retrieval_scores expects image_emb and text_emb (N, d) and labels (N,), got "
                         f"{tuple(image_emb.shape)}, {tuple(text_emb.shape)}, {tuple(labels.shape)}")
    rows = torch.arange(len(labels))
    if queries is not None:
        q = torch.as_tensor(queries)
        if q.dtype == torch.bool:
            if q.shape != labels.shape:
                raise ValueError(f"a boolean queries mask must have shape {tuple(labels.shape)}, "
                                 f"got {tuple(q.shape)}")
            q = q.nonzero().flatten()
        rows = q.long().flatten()
        if len(rows) == 0:
            raise ValueError("queries selects no scene: there is nothing to measure")
    relevant = (labels[rows, None] == labels[None, :]).numpy()
    report: dict[str, float] = {"n": len(rows)}
    for name, sim in (("i2t", image_emb[rows] @ text_emb.T), ("t2i", text_emb[rows] @ image_emb.T)):
        for k, r in metrics.recall_at_k(sim, ks, relevant).items():
            report[f"{name}_R@{k}"] = r
        report[f"{name}_median_rank"] = metrics.median_rank(sim, relevant)
        report[f"{name}_mAP"] = metrics.mean_average_precision(sim, relevant)
    return report


#: Rates of a model whose four similarities per pair are in random order: the text (or image)
#: score needs two independent comparisons to go its way, (1/2)^2 = 1/4; the group score needs
#: the two matching pairs to be the top two of the four similarities, 1 / C(4, 2) = 1/6.
WINOGROUND_CHANCE = {"text": 0.25, "image": 0.25, "group": 1 / 6}


def winoground_from_similarity(s00: Tensor, s01: Tensor, s10: Tensor,
                               s11: Tensor) -> dict[str, float]:
    """Winoground rates from the four similarities of each pair, ``s_ij = sim(I_i, C_j)``,
    each ``(n,)``:

        text  = mean[ s00 > s01  and  s11 > s10 ]   (each image picks its own caption)
        image = mean[ s00 > s10  and  s11 > s01 ]   (each caption picks its own image)
        group = mean[ text and image ]

    Comparisons are strict: a tie is a failure. Chance levels: ``WINOGROUND_CHANCE``.
    """
    sims = [torch.as_tensor(s) for s in (s00, s01, s10, s11)]
    if any(s.dim() != 1 or s.shape != sims[0].shape for s in sims) or len(sims[0]) == 0:
        raise ValueError(
            "winoground_from_similarity expects four non-empty (n,) tensors, got shapes "
            f"{[tuple(s.shape) for s in sims]}"
        )
    s00, s01, s10, s11 = sims
    text = (s00 > s01) & (s11 > s10)
    image = (s00 > s10) & (s11 > s01)
    group = text & image
    return {"text": text.float().mean().item(), "image": image.float().mean().item(),
            "group": group.float().mean().item()}


def winoground_scores(model: DualEncoder, pairs, batch_size: int = 512) -> dict[str, float]:
    """Text, image and group scores of ``model`` on ``winoground_pairs(...)`` (keys ``image0``,
    ``text0``, ``image1``, ``text1``): see ``winoground_from_similarity``. Chance is 0.25,
    0.25 and 1/6."""
    image0, tokens0, image1, tokens1 = split_tensors(
        pairs, ("image0", "text0", "image1", "text1"), "winoground_scores")
    i0, c0 = embed_pairs(model, image0, tokens0, batch_size)
    i1, c1 = embed_pairs(model, image1, tokens1, batch_size)
    return winoground_from_similarity(_rowwise(i0, c0), _rowwise(i0, c1), _rowwise(i1, c0),
                                      _rowwise(i1, c1))


def _rowwise(a: Tensor, b: Tensor) -> Tensor:
    """``sim(a_i, b_i)`` for each row of two ``(n, d)`` unit-vector matrices."""
    return (a * b).sum(-1)


def exact_match_by_novelty(captions: list[str], references: list[str], train_captions) -> dict[str, float]:
    """Exact match of decoded ``captions`` against ``references``, overall and split by whether
    the reference caption occurs in the training split (``seen``) or not (``unseen``: a new
    combination of known words, which the model must compose). Keys ``all``, ``seen``,
    ``unseen``, ``n_seen``, ``n_unseen`` (a rate is NaN when its group is empty)."""
    if len(captions) != len(references):
        raise ValueError(f"got {len(captions)} captions for {len(references)} references")
    train = set(train_captions)
    groups = {"seen": [], "unseen": []}
    for c, r in zip(captions, references):
        groups["seen" if r in train else "unseen"].append(c == r)
    rate = lambda hits: sum(hits) / len(hits) if hits else float("nan")  # noqa: E731
    return {"all": rate(groups["seen"] + groups["unseen"]), "seen": rate(groups["seen"]),
            "unseen": rate(groups["unseen"]), "n_seen": len(groups["seen"]),
            "n_unseen": len(groups["unseen"])}
