"""Offline, seeded datasets. Each loader returns ``Splits`` of ``ModalDataset`` tensors.

* ``load_av_digits()`` -- AV-Digits: a real MNIST digit, a spoken digit (log-mel) and a text hint.
* ``load_shapes()`` -- Shapes: a rendered scene of coloured shapes and its caption.
* ``load_digit_strings()`` -- spoken digit strings: 1-7 spoken digits, true boundaries kept aside.
* ``load_xor()`` -- XOR-Synergy: two vectors each carrying one bit; the label is their XOR.
* ``load_easy_vqa()`` -- easy-VQA: the published VQA data set inside the ``easy-vqa`` package.
* ``load_shapes_qa()`` -- Shapes-QA: relational, counting and two-attribute questions on Shapes.

``mmcourse.data.quality`` corrupts any split (imbalance, missing modalities, noise, asymmetry,
misalignment) without touching the clean data.

The exercises' experiments draw small seeded tensors from one module each: ``bars.make_bars``
(ex. 02), ``flag_task.make_flag_task`` (04), ``latent_pairs.make_pairs`` (07),
``bigram_corpus.make_corpus`` (08), ``relation_task.make_relation_data`` (13).
"""

from mmcourse.data.base import ModalDataset, Splits, check_batch
from mmcourse.data.text import Vocab, tokenize

__all__ = ["ModalDataset", "Splits", "Vocab", "check_batch", "load_av_digits", "load_digit_strings",
           "load_easy_vqa", "load_shapes", "load_shapes_qa", "load_xor", "tokenize"]


def __getattr__(name: str):
    if name == "load_av_digits":
        from mmcourse.data.av_digits import load_av_digits

        return load_av_digits
    if name == "load_digit_strings":
        from mmcourse.data.digit_strings import load_digit_strings

        return load_digit_strings
    if name == "load_shapes":
        from mmcourse.data.shapes import load_shapes

        return load_shapes
    if name == "load_easy_vqa":
        from mmcourse.data.easy_vqa import load_easy_vqa

        return load_easy_vqa
    if name == "load_shapes_qa":
        from mmcourse.data.shapes_qa import load_shapes_qa

        return load_shapes_qa
    if name == "load_xor":
        from mmcourse.data.synergy import load_xor

        return load_xor
    raise AttributeError(f"module 'mmcourse.data' has no attribute {name!r}")
