"""Reference answers for the exercise parts that the package has no single function for.

Each is a few lines on top of PyTorch / scikit-learn / ``mmcourse``, written out as the formula
the exercise states; ``test_references_agree_with_independent_computations`` in
``tests/test_grading.py`` checks them against independent computations. The other parts are
graded against ``mmcourse.models`` / ``mmcourse.metrics`` / ``torch`` / ``sklearn`` directly
(see ``mmcourse.grading.problems``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.metrics import accuracy


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The output length of a convolution, read off PyTorch: ``⌊(n + 2p − k) / s⌋ + 1``."""
    x = torch.zeros(1, 1, size, 1)
    return int(F.conv2d(x, torch.zeros(1, 1, kernel, 1), stride=(stride, 1), padding=(padding, 0)).shape[2])


def late_fusion(logits: Tensor, present: Tensor) -> Tensor:
    """Mean of the present modalities' logits, ``s = Σ_m p_m s_m / max(Σ_m p_m, 1)``
    (``LateFusion(combine="mean")``): ``logits (M, B, C)``, ``present (M, B)`` → ``(B, C)``."""
    p = present.to(logits.dtype)[..., None]
    return (p * logits).sum(0) / p.sum(0).clamp(min=1)


def early_fusion(features: list[Tensor], weight: Tensor, bias: Tensor) -> Tensor:
    """A linear head on the concatenated features: ``s = [f_1; ..; f_M] W^T + b``."""
    return F.linear(torch.cat(list(features), dim=1), weight, bias)


def greedy_decode(table: Tensor, bos: int, eos: int, max_len: int) -> list[int]:
    """Greedy decoding of a bigram model (``table[a]``: logits of the token after ``a``):
    ``y_t = argmax table[y_{t-1}]`` from ``y_0 = bos``, stopping after ``eos`` or ``max_len``
    tokens. Returns ``y_1 ..`` (``eos`` included when produced)."""
    out, prev = [], bos
    for _ in range(max_len):
        prev = int(torch.argmax(table[prev]))
        out.append(prev)
        if prev == eos:
            break
    return out


def sequence_log_prob(table: Tensor, tokens: Tensor, bos: int) -> float:
    """``log p(y_1..y_T) = Σ_t log softmax(table[y_{t-1}])[y_t]`` with ``y_0 = bos``."""
    prev = torch.cat([torch.tensor([bos]), tokens.long()])
    logp = F.log_softmax(table.double()[prev[:-1]], dim=-1)
    return float(logp.gather(1, tokens.long()[:, None]).sum())


def mean_impute(features: Tensor, present: Tensor) -> Tensor:
    """Rows whose modality is absent (``present[i]`` False) replaced by the mean of the present
    rows (scikit-learn's ``SimpleImputer(strategy="mean")`` on rows set to NaN); all zeros when
    no row is present."""
    from sklearn.impute import SimpleImputer

    x = features.double().numpy().copy()
    keep = present.bool().numpy()
    if not keep.any():
        return torch.zeros_like(features)
    x[~keep] = np.nan
    filled = SimpleImputer(strategy="mean", keep_empty_features=True).fit_transform(x)
    return torch.from_numpy(filled).to(features.dtype)


def balanced_class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """scikit-learn's ``"balanced"`` weights ``w_c = N / (K n_c)`` (``K`` the number of classes
    present), 0 for a class absent from ``labels``: ``(num_classes,)`` float32."""
    from sklearn.utils.class_weight import compute_class_weight

    y = labels.numpy()
    classes = np.unique(y)
    w = np.zeros(num_classes)
    w[classes] = compute_class_weight("balanced", classes=classes, y=y)
    return torch.tensor(w, dtype=torch.float32)


def macro_f1(confusion: Tensor) -> float:
    """Macro F1 from a confusion matrix (rows true, columns predicted), as scikit-learn's
    ``f1_score(average="macro", labels=range(C), zero_division=0)`` on the expanded labels."""
    from sklearn.metrics import f1_score

    m = np.asarray(confusion, dtype=np.int64)
    c = len(m)
    true = np.repeat(np.repeat(np.arange(c), c), m.ravel())
    pred = np.repeat(np.tile(np.arange(c), c), m.ravel())
    return float(f1_score(true, pred, labels=list(range(c)), average="macro", zero_division=0))


def modality_ablation(logits: Tensor, labels: Tensor) -> Tensor:
    """Each modality's contribution: ``Δ_m = acc(all) − acc(all but m)``, where a subset's
    prediction is the argmax of the mean of its logits (late fusion): ``(M,)`` float32."""
    m = len(logits)
    full = accuracy(labels, logits.mean(0))
    drops = []
    for i in range(m):
        rest = torch.cat([logits[:i], logits[i + 1:]])
        drops.append(full - accuracy(labels, rest.mean(0)))
    return torch.tensor(drops, dtype=torch.float32)


def dtw_distance(x, y) -> float:
    """The DTW distance ``D[N, M]`` of ``x (N, F)`` and ``y (M, F)`` (Euclidean frame cost, steps
    (1, 0), (0, 1), (1, 1)): ``mmcourse.alignment.dtw``, itself checked against dtw-python."""
    from mmcourse.alignment.warping import dtw

    return dtw(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)).distance


def ctc_nll(log_probs: Tensor, target, blank: int) -> float:
    """``-log p(l | x)`` of one sequence, ``log_probs (T, V)``: PyTorch's ``F.ctc_loss``."""
    target = torch.as_tensor(list(target), dtype=torch.long)
    return float(F.ctc_loss(log_probs.double()[:, None], target[None], [len(log_probs)], [len(target)],
                            blank=blank, reduction="sum"))


def dtw_word_accuracy(templates, template_labels, words, word_labels) -> float:
    """1-nearest-neighbour accuracy under the DTW distance (``mmcourse.alignment.dtw``): each word
    takes the label of its closest template (the first on a tie)."""
    from mmcourse.alignment.warping import dtw

    correct = 0
    for word, label in zip(words, word_labels):
        d = [dtw(np.asarray(word, np.float64), np.asarray(t, np.float64)).distance for t in templates]
        correct += int(template_labels[int(np.argmin(d))]) == int(label)
    return correct / len(words)
