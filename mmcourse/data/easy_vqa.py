"""easy-VQA: a published visual-question-answering data set, loaded from its PyPI package.

easy-VQA (Victor Zhou, 2020, MIT licence) ships inside the ``easy-vqa`` package: 64×64 images of
one coloured shape on a pale background, questions about it, and 13 possible answers::

    "what color is the triangle?" -> "red"      "is there not a blue shape?" -> "no"

4,000 train / 1,000 test images and 38,575 / 9,673 questions. A VQA model scores every answer,

    P(a | image, question) = softmax(s(a, image, question)),   â = argmax_a P(a | ...),

and is judged by its accuracy, overall and per question type (``yes/no``, ``shape``, ``colour``:
the kind of answer a question asks for). ``load_easy_vqa`` returns the course's ``Splits``: one
sample per *question*, with its image. The validation split is carved from the official train
split **by image** (every question of an image lands in the same split), so no image is in two
splits; the official test split is kept as it is.

Nothing downloads: the images and questions are read from the installed package, checked
against the counts and the SHA-256 digests the package was published with, and decoded once
per process (about a second for the 5,000 PNGs).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np
import torch

from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.shapes.scene import _check_int
from mmcourse.data.text import Vocab, tokenize

#: what the published package holds: images, questions, answers per split
EXPECTED = {"train_images": 4000, "test_images": 1000, "train_questions": 38575,
            "test_questions": 9673, "answers": 13}
#: SHA-256 of the decoded images (uint8, in id order) and of the questions, per split
DIGESTS = {
    "train": ("a40e8163e77d3ad089961903d049816b608f00b10b75864639c15afbd542cdd0",
              "a84103e0ee37d0e856fb7bf8e035611f2a533f3cbe32eaf264386cf21d7913c8"),
    "test": ("25fa8ef463ac0efa28a43bce372e798825bd5daafa56fc63a063db2ccc991251",
             "6048919417ba41faab3da6c011684dcafeaaa6e4eff0ef068e7d674f0aa143c1"),
}
IMAGE_SIZE = 64
QUESTION_TYPES = ("yes/no", "shape", "colour")
SHAPE_ANSWERS = ("circle", "rectangle", "triangle")
MODALITY_SHAPES = {
    "image": "(3, 64, 64) uint8 RGB (models scale by 1/255)",
    "text": "(L,) question token ids, 0 = <pad>",
    "label": "() answer id (info['answers'])",
    "qtype": "() question type id (info['question_types'])",
    "image_id": "() the package's image id within its official split",
}
_INSTALL = "pip install easy-vqa  (it is a dependency of mmcourse: pip install -e .)"


class EasyVQAError(RuntimeError):
    """The ``easy-vqa`` package is missing, or does not hold the published data set."""


def _package():
    try:
        import easy_vqa
    except ImportError as err:
        raise EasyVQAError(f"easy-VQA needs the 'easy-vqa' package, which is not installed: {_INSTALL}"
                           ) from err
    return easy_vqa


def question_words(question: str) -> list[str]:
    """The words of a question: lower-cased, the final "?" dropped ("what color is it?" ->
    ["what", "color", "is", "it"])."""
    return tokenize(question.replace("?", " "))


def question_type(answer: str) -> str:
    """``"yes/no"``, ``"shape"`` or ``"colour"``: what kind of answer the question asks for."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "shape" if answer in SHAPE_ANSWERS else "colour"


def _altered(what: str, detail: str) -> EasyVQAError:
    return EasyVQAError(
        f"the installed easy-vqa package does not hold the published easy-VQA data ({what}: "
        f"{detail}); reinstall it: pip install --force-reinstall easy-vqa==1.0")


def _read_split(split: str, verify: bool = True):
    return _read_split_cached(split, bool(verify))


@lru_cache(maxsize=4)
def _read_split_cached(split: str, verify: bool):
    """``(images uint8 (N, 64, 64, 3) in id order, questions, answers, image ids)`` of one
    official split, checked against the published counts and digests."""
    from PIL import Image

    pkg = _package()
    get_q = pkg.get_train_questions if split == "train" else pkg.get_test_questions
    get_p = pkg.get_train_image_paths if split == "train" else pkg.get_test_image_paths
    try:
        questions, answers, image_ids = get_q()
        paths = get_p()
    except (OSError, ValueError) as err:
        raise _altered(f"{split} files", f"{type(err).__name__}: {err}") from err
    n_img, n_q = EXPECTED[f"{split}_images"], EXPECTED[f"{split}_questions"]
    if len(paths) != n_img or sorted(paths) != list(range(n_img)):
        raise _altered(f"{split} images", f"expected ids 0..{n_img - 1}, found {len(paths)} images")
    if len(questions) != n_q:
        raise _altered(f"{split} questions", f"expected {n_q}, found {len(questions)}")
    images = np.stack([np.asarray(Image.open(paths[i]).convert("RGB")) for i in range(n_img)])
    images.setflags(write=False)
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise _altered(f"{split} images", f"expected 64x64 RGB, found {images.shape[1:]}")
    if verify:
        q_bytes = json.dumps([questions, answers, image_ids]).encode()
        got = (hashlib.sha256(images.tobytes()).hexdigest(), hashlib.sha256(q_bytes).hexdigest())
        for what, want, have in zip(("images", "questions"), DIGESTS[split], got):
            if want != have:
                raise _altered(f"{split} {what}", f"SHA-256 {have[:12]}..., expected {want[:12]}...")
    return images, tuple(questions), tuple(answers), tuple(image_ids)


def encode_questions(questions, vocab: Vocab, length: int) -> torch.Tensor:
    """``(N, length)`` int64 word ids of ``questions``, padded with 0; an unknown word is
    ``<unk>``; a question longer than ``length`` words is an error."""
    ids = np.zeros((len(questions), length), dtype=np.int64)
    for row, q in enumerate(questions):
        words = question_words(q)
        if len(words) > length:
            raise ValueError(f"question {q!r} has {len(words)} words, more than length={length}")
        ids[row, :len(words)] = [vocab.stoi.get(w, vocab.unk_id) for w in words]
    return torch.from_numpy(ids)


@lru_cache(maxsize=1)
def easy_vqa_vocab() -> Vocab:
    """The question vocabulary: every word of the official *train* questions, sorted (4 specials
    first)."""
    _, questions, _, _ = _read_split("train")
    return Vocab(sorted({w for q in questions for w in question_words(q)}))


def _make_split(name: str, images: np.ndarray, questions, answers, image_ids, keep: np.ndarray,
                vocab: Vocab, answer_ids: dict, length: int) -> ModalDataset:
    """The questions whose image is in ``keep`` (a bool mask over image ids)."""
    all_ids = np.asarray(image_ids)
    rows = np.flatnonzero(keep[all_ids])
    qs = [questions[i] for i in rows]
    ans = [answers[i] for i in rows]
    ids = torch.from_numpy(all_ids[rows])
    pixels = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N_img, 3, 64, 64)
    return ModalDataset(
        {"image": pixels[ids], "text": encode_questions(qs, vocab, length),
         "label": torch.tensor([answer_ids[a] for a in ans], dtype=torch.long),
         "qtype": torch.tensor([QUESTION_TYPES.index(question_type(a)) for a in ans], dtype=torch.long),
         "image_id": ids},
        name=name, meta={"question": qs, "answer": ans}, shapes=MODALITY_SHAPES)


def load_easy_vqa(*, val_images: int = 400, seed: int = 0, verify: bool = True) -> Splits:
    """easy-VQA as train / val / test ``Splits``, one sample per question.

    The official test split is ``test`` (1,000 images, 9,673 questions). ``val_images`` images
    of the official train split, drawn with ``seed``, and all their questions form ``val``; the
    other images' questions are ``train`` -- so no image is in two splits. Each split holds

    * ``image``    uint8 ``(N, 3, 64, 64)``: the question's image (models scale by 1/255; uint8
      keeps the 38,575 training copies to 470 MB);
    * ``text``     int64 ``(N, L)``: question word ids, padded with 0 (``L = info["max_len"]``);
      a word outside the train vocabulary is ``<unk>``;
    * ``label``    int64 ``(N,)``: the answer's index in ``info["answers"]``;
    * ``qtype``    int64 ``(N,)``: index in ``info["question_types"]`` (yes/no, shape, colour);
    * ``image_id`` int64 ``(N,)``: the package's image id within its official split;

    and meta ``question`` and ``answer`` (str). The data are checked against the published
    counts and SHA-256 digests (``verify=False`` skips the digests, not the counts): a missing
    or altered package is an ``EasyVQAError`` that says how to reinstall it.
    """
    seed = _check_int("seed", seed, 0)
    val_images = _check_int("val_images", val_images, 1, EXPECTED["train_images"] - 1)
    train = _read_split("train", verify)
    test = _read_split("test", verify)
    answers = list(_package().get_answers())
    if len(answers) != EXPECTED["answers"] or set(answers) != set(train[2]) | set(test[2]):
        raise _altered("answers", f"expected 13 answers covering every question, got {answers}")
    answer_ids = {a: i for i, a in enumerate(answers)}
    vocab = easy_vqa_vocab()
    length = max(len(question_words(q)) for q in train[1] + test[1])
    order = np.random.default_rng(seed).permutation(EXPECTED["train_images"])
    in_val = np.zeros(EXPECTED["train_images"], dtype=bool)
    in_val[order[:val_images]] = True
    splits = [
        _make_split("train", *train, ~in_val, vocab, answer_ids, length),
        _make_split("val", *train, in_val, vocab, answer_ids, length),
        _make_split("test", *test, np.ones(EXPECTED["test_images"], dtype=bool), vocab, answer_ids,
                    length),
    ]
    info = {
        "title": "easy-VQA (the published data set from the easy-vqa package; val carved from "
                 "train by image)",
        "answers": answers,
        "question_types": QUESTION_TYPES,
        "vocab": vocab,
        "max_len": length,
        "image_size": IMAGE_SIZE,
        "images": {"train": int((~in_val).sum()), "val": val_images,
                   "test": EXPECTED["test_images"]},
        "seed": seed,
    }
    return Splits(*splits, info=info)


def split_images(split: ModalDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct images of a split: ``(image_ids (M,), images uint8 (M, 3, 64, 64))``."""
    ids = split.tensors["image_id"]
    unique, first = np.unique(ids.numpy(), return_index=True)
    return torch.from_numpy(unique), split.tensors["image"][torch.from_numpy(first)]


class SymmetryBatches:
    """Shuffled training batches of an easy-VQA split, each image turned by a random symmetry of
    the square (one of the 8 flips / quarter turns, drawn per sample); questions, answers and the
    other keys are untouched. No easy-VQA question is about position or orientation (a turned
    triangle is still a triangle), so every answer stays right: the 3,600 training images become
    8 × 3,600 for shape recognition. An iterable of batch dicts: pass it to ``fit`` as ``train``.
    A new order and new symmetries every pass; ``seed`` makes the passes reproduce."""

    def __init__(self, split: ModalDataset, batch_size: int = 128, *, seed: int = 0):
        if not isinstance(split, ModalDataset) or "image" not in split.tensors:
            raise TypeError(f"SymmetryBatches expects a ModalDataset with an 'image' key, got "
                            f"{type(split).__name__}")
        self.split, self.batch_size = split, _check_int("batch_size", batch_size, 1)
        self.generator = torch.Generator().manual_seed(_check_int("seed", seed, 0))

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.split), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            batch = {k: v[idx] for k, v in self.split.tensors.items()}
            batch["image"] = dihedral(batch["image"], torch.randint(8, (len(idx),), generator=self.generator))
            yield batch


def dihedral(images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``images (B, C, H, W)`` (square) with image ``b`` turned by symmetry ``which[b] ∈ 0..7``:
    ``which % 4`` quarter turns, then a left-right flip if ``which >= 4`` (0 = unchanged)."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"dihedral expects square images (batch, channels, size, size), got "
                         f"{tuple(images.shape)}")
    out = images.clone()
    for k in range(8):
        sel = which == k
        if k and sel.any():
            turned = torch.rot90(images[sel], k % 4, dims=(-2, -1))
            out[sel] = turned.flip(-1) if k >= 4 else turned
    return out
