"""Visual question answering as classification, and the baselines that expose language priors.

A VQA model scores every answer ``a`` of a fixed list for an image ``v`` and a question ``q``,

    P(a | v, q) = softmax_a s(a, v, q),      â = argmax_a P(a | v, q),

trained with cross-entropy on the answer id ``label``. Every model here reads the batch keys
``image`` (``(B, 3, H, W)``, uint8 scaled by 1/255 or float in [0, 1]) and ``text``
(``(B, L)`` word ids, 0 = padding) and returns a ``ModelOutput``.

* ``QuestionOnly``  -- ``s = MLP(bow(q))``: how far the question alone goes (language priors:
  "what color ..." is never answered "circle");
* ``ImageOnly``     -- ``s = MLP(cnn(v))``: how far the image alone goes;
* ``ProductFusionVQA`` -- the easy-VQA tutorial's model: a CNN image vector and a bag-of-words
  question vector, fused by the element-wise product, then an MLP,

      u = tanh(W_v cnn(v)),   w = tanh(W_2 tanh(W_1 bow(q))),   s = W_o tanh(W_h (u ⊙ w)),

  where ``bow(q) ∈ {0, 1}^V`` marks the words present (order is lost);
* ``majority_per_type`` -- no learning: answer each question type's most frequent train answer.

The transformers that read patches and words together are in ``mmcourse.models.vqa_transformers``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmcourse.models.output import ModelOutput
from mmcourse.models.patch_embedding import as_float_image
from mmcourse.tensors import check_token_ids


class VQAModel(nn.Module):
    """Base of the VQA models: ``modalities`` they read, ``num_answers``, and batch checks."""

    modalities: tuple[str, ...] = ("image", "text")

    def __init__(self, num_answers: int, vocab_size: int, image_size: int, question_len: int):
        super().__init__()
        for name, value in (("num_answers", num_answers), ("vocab_size", vocab_size),
                            ("image_size", image_size), ("question_len", question_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive int, got {value!r}")
        self.num_answers, self.vocab_size = num_answers, vocab_size
        self.image_size, self.question_len = image_size, question_len

    def _inputs(self, batch: Mapping[str, Tensor]) -> tuple[Tensor | None, Tensor | None]:
        """The checked ``(image float (B, 3, S, S), text (B, L))`` this model reads."""
        name = type(self).__name__
        if not isinstance(batch, Mapping):
            raise TypeError(f"{name} takes a batch dict with keys {list(self.modalities)}, "
                            f"got {type(batch).__name__}")
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise KeyError(f"{name} expects modalities {list(self.modalities)}; the batch has "
                           f"{list(batch)} (missing {missing})")
        image = text = None
        if "image" in self.modalities:
            image = as_float_image(batch["image"], name)
            want = (3, self.image_size, self.image_size)
            if tuple(image.shape[1:]) != want:
                raise ValueError(f"{name} expects images (batch, {', '.join(map(str, want))}), "
                                 f"got {tuple(image.shape)}")
        if "text" in self.modalities:
            text = check_token_ids(batch["text"], self.vocab_size, name)
            if text.shape[1] != self.question_len:
                raise ValueError(f"{name} expects question ids (batch, {self.question_len}), "
                                 f"got {tuple(text.shape)}")
            if image is not None and len(text) != len(image):
                raise ValueError(f"{name}: {len(image)} images but {len(text)} questions in the batch")
        return image, text


def bag_of_words(text: Tensor, vocab_size: int) -> Tensor:
    """``(B, L)`` word ids → ``(B, V)`` float multi-hot: 1 where a word occurs (``<pad>`` never)."""
    hot = torch.zeros(len(text), vocab_size, device=text.device)
    hot.scatter_(1, text, 1.0)
    hot[:, 0] = 0.0
    return hot


def tutorial_cnn(image_size: int, out_dim: int = 32) -> nn.Sequential:
    """The easy-VQA tutorial's image branch: conv(8) → pool → conv(16) → pool → flatten → dense,
    ``(B, 3, S, S)`` → ``(B, out_dim)`` (tanh)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * (image_size // 4) ** 2, out_dim), nn.Tanh())


class QuestionOnly(VQAModel):
    """``s(a, q) = MLP(bow(q))``: the question alone, no image."""

    modalities = ("text",)

    def __init__(self, num_answers: int, vocab_size: int, question_len: int, hidden: int = 64):
        super().__init__(num_answers, vocab_size, 1, question_len)
        self.mlp = nn.Sequential(nn.Linear(vocab_size, hidden), nn.Tanh(), nn.Linear(hidden, num_answers))

    def forward(self, batch) -> ModelOutput:
        _, text = self._inputs(batch)
        return ModelOutput(logits=self.mlp(bag_of_words(text, self.vocab_size)))


class ImageOnly(VQAModel):
    """``s(a, v) = MLP(cnn(v))``: the image alone, no question."""

    modalities = ("image",)

    def __init__(self, num_answers: int, image_size: int, hidden: int = 32):
        super().__init__(num_answers, 1, image_size, 1)
        self.cnn = tutorial_cnn(image_size, hidden)
        self.head = nn.Linear(hidden, num_answers)

    def forward(self, batch) -> ModelOutput:
        image, _ = self._inputs(batch)
        return ModelOutput(logits=self.head(self.cnn(image)))


class ProductFusionVQA(VQAModel):
    """The easy-VQA tutorial's model: ``s = W_o tanh(W_h (u ⊙ w))`` with ``u`` the CNN image
    vector and ``w`` the bag-of-words question vector (see the module docstring).

    ``extras``: ``image_vector`` ``u`` and ``question_vector`` ``w``, ``(B, hidden)`` each.
    """

    def __init__(self, num_answers: int, vocab_size: int, image_size: int, question_len: int,
                 hidden: int = 32):
        super().__init__(num_answers, vocab_size, image_size, question_len)
        self.cnn = tutorial_cnn(image_size, hidden)
        self.question = nn.Sequential(nn.Linear(vocab_size, hidden), nn.Tanh(),
                                      nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, num_answers))

    def forward(self, batch) -> ModelOutput:
        image, text = self._inputs(batch)
        u = self.cnn(image)
        w = self.question(bag_of_words(text, self.vocab_size))
        return ModelOutput(logits=self.head(u * w), extras={"image_vector": u, "question_vector": w})


def majority_per_type(train_labels: Tensor, train_types: Tensor, types: Tensor,
                      num_answers: int) -> Tensor:
    """Answer every question with its type's most frequent answer in train: ``(N,)`` answer ids
    for ``types (N,)``. A type unseen in train gets the overall most frequent answer."""
    for name, t in (("train_labels", train_labels), ("train_types", train_types), ("types", types)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.is_floating_point():
            raise ValueError(f"majority_per_type: {name} must be a 1-D integer tensor")
    if len(train_labels) != len(train_types) or len(train_labels) == 0:
        raise ValueError(f"majority_per_type: train_labels ({len(train_labels)}) and train_types "
                         f"({len(train_types)}) must be non-empty and of equal length")
    overall = int(torch.bincount(train_labels, minlength=num_answers).argmax())
    answer = {}
    for t in train_types.unique().tolist():
        answer[t] = int(torch.bincount(train_labels[train_types == t], minlength=num_answers).argmax())
    return torch.tensor([answer.get(t, overall) for t in types.tolist()], dtype=torch.long)


def accuracy_by_type(predictions: Tensor, labels: Tensor, types: Tensor,
                     names: tuple[str, ...]) -> dict[str, float]:
    """Accuracy overall and per question type: ``{"overall": .., names[t]: ..}`` (a type with
    no question is left out)."""
    if not (predictions.shape == labels.shape == types.shape) or predictions.dim() != 1:
        raise ValueError(f"accuracy_by_type expects three (N,) tensors, got {tuple(predictions.shape)}, "
                         f"{tuple(labels.shape)}, {tuple(types.shape)}")
    right = (predictions == labels).float()
    result = {"overall": right.mean().item()}
    for t, name in enumerate(names):
        sel = types == t
        if sel.any():
            result[name] = right[sel].mean().item()
    return result


__all__ = ["ImageOnly", "ProductFusionVQA", "QuestionOnly", "VQAModel", "accuracy_by_type",
           "bag_of_words", "majority_per_type", "tutorial_cnn"]
