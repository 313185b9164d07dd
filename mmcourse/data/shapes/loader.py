"""The Shapes dataset: seeded train / val / test splits of rendered scenes and their captions.

Each split of ``N`` samples holds ``image (N, 3, S, S)``, ``text (N, L)`` (caption token ids
``<bos>`` caption ``<eos>``, padded with 0, ``L = max_tokens(max_shapes)``), ``length (N,)`` and
``label (N,) = caption_label(caption)``. The three splits come from disjoint seed streams,
``SeedSequence(seed).spawn(3)``, and each split splits its stream again into one for the scenes
and one for the rendering nuisance, so the same ``seed`` and ``max_shapes`` give the same scenes
at any ``image_size``.
"""

from __future__ import annotations

import numpy as np
import torch

from mmcourse import config
from mmcourse.data.base import ModalDataset, Splits
from mmcourse.data.shapes.grammar import (
    GRAMMAR,
    caption_label,
    caption_of,
    max_tokens,
    num_captions,
    shapes_vocab,
)
from mmcourse.data.shapes.render import _check_image_size, _render_arrays
from mmcourse.data.shapes.sampling import _sample_arrays
from mmcourse.data.shapes.scene import _arrays_to_scenes, _check_int, _check_max_shapes
from mmcourse.data.text import Vocab

MODALITY_SHAPES = {
    "image": "(3, S, S) RGB in [0, 1]",
    "text": "(L,) caption token ids: <bos> caption <eos>, 0 = <pad>",
    "length": "() non-pad tokens",
    "label": "() canonical caption id",
}


# -- the dataset ------------------------------------------------------------------------------
def _make_split(name: str, n: int, size: int, max_shapes: int, ss: np.random.SeedSequence,
                vocab: Vocab) -> ModalDataset:
    scene_ss, render_ss = ss.spawn(2)
    arrays = _sample_arrays(n, np.random.default_rng(scene_ss), max_shapes)
    images = _render_arrays(*arrays, size, np.random.default_rng(render_ss))
    scenes = _arrays_to_scenes(*arrays)
    captions = [caption_of(s) for s in scenes]
    tokens, length = vocab.encode_batch(captions, length=max_tokens(max_shapes), bos=True,
                                        eos=True)
    labels = torch.tensor([caption_label(c) for c in captions], dtype=torch.long)
    return ModalDataset(
        {"image": torch.from_numpy(images), "text": tokens, "length": length, "label": labels},
        name=name, meta={"caption": captions, "scene": scenes}, shapes=MODALITY_SHAPES,
    )


def load_shapes(n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
                image_size: int | None = None, *, max_shapes: int = 2, seed: int = 0,
                profile: str | config.Profile | None = None) -> Splits:
    """Shapes train / val / test splits: rendered scenes and their canonical captions.

    Sizes and ``image_size`` default to the run profile (``profile`` names one, else
    ``MMCOURSE_PROFILE``): 4,000 / 500 / 1,000 at 32 px by default. Each split holds

    * ``image``  float32 ``(N, 3, S, S)`` in [0, 1];
    * ``text``   int64 ``(N, L)``: caption token ids ``<bos>`` caption ``<eos>``, padded with 0,
      ``L = info["max_len"]`` (the same key and info entry as AV-Digits' hints);
    * ``length`` int64 ``(N,)``: non-pad tokens per row;
    * ``label``  int64 ``(N,)``: ``caption_label`` of the caption (same caption, same label);

    and meta ``caption`` (str) and ``scene`` (list of object dicts). Splits come from disjoint
    seed streams (``SeedSequence(seed).spawn(3)``); the same arguments give bit-identical tensors,
    and the same ``seed`` and ``max_shapes`` give the same scenes at any ``image_size``.
    """
    prof = profile if isinstance(profile, config.Profile) else config.profile(profile)
    sizes = {"train": prof.shapes_train if n_train is None else n_train,
             "val": prof.shapes_val if n_val is None else n_val,
             "test": prof.shapes_test if n_test is None else n_test}
    sizes = {k: _check_int(f"n_{k}", v, 0) for k, v in sizes.items()}
    size = _check_image_size(prof.shapes_image_size if image_size is None else image_size)
    max_shapes = _check_max_shapes(max_shapes)
    seed = _check_int("seed", seed, 0)
    vocab = shapes_vocab()
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = [_make_split(name, n, size, max_shapes, ss, vocab)
              for (name, n), ss in zip(sizes.items(), streams)]
    train_captions = set(splits[0].meta["caption"])
    test_captions = splits[2].meta["caption"]
    seen = float(np.mean([c in train_captions for c in test_captions])) if test_captions else 0.0
    info = {
        "title": "Shapes (procedural scenes of coloured shapes + canonical captions)",
        "seed": seed,
        "image_size": size,
        "max_shapes": max_shapes,
        "vocab": vocab,
        "max_len": max_tokens(max_shapes),
        "grammar": GRAMMAR,
        "possible_captions": num_captions(max_shapes),
        "distinct_captions": {s.name: len(set(s.meta["caption"])) for s in splits},
        "test_captions_seen_in_train": round(seen, 3),
    }
    return Splits(*splits, info=info)
