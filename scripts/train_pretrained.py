"""Train the pretrained checkpoints shipped in ``mmcourse/checkpoints/`` (chapter 11).

    MMCOURSE_PROFILE=full python scripts/train_pretrained.py [--name shapes_clip] [--check]

``shapes_clip``: a CLIP-style ``DualEncoder`` trained with symmetric InfoNCE on Shapes scenes of
1-3 objects and their captions, **never** showing a held-out (colour, kind) combination
(``mmcourse.data.shapes.holdout.HELD_OUT``). The profile sets the number of scenes and epochs
(``full``: 20,000 scenes, 2 × the base epochs); the model stays at the course's 32-px scenes so
that the notebooks can use it on their own data. The script writes ``NAME.pt`` and
``NAME.sha256`` (verified by ``mmcourse.pretrained.load``), and records the data, profile,
epochs, time and zero-shot figures in the checkpoint's metadata. ``--check`` only reloads the
shipped file and prints its metadata.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mmcourse import config, pretrained
from mmcourse.data.shapes import MAX_SHAPES, shapes_vocab
from mmcourse.data.shapes.holdout import HELD_OUT, load_pretraining, load_single_objects
from mmcourse.models.retrieval import DualEncoder
from mmcourse.train import fit
from mmcourse.zero_shot import template_table

#: The architecture of the shipped Shapes dual encoder (a few MB of float32 weights).
SHAPES_CLIP_KWARGS = {"vocab_size": 20, "embed_dim": 64, "image_size": 32, "width": 32,
                      "image_features": 128, "token_dim": 32, "hidden": 128}
BASE_EPOCHS = 5
SEED = 0


def train_shapes_clip(prof: config.Profile, *, n_train: int | None = None, epochs: int | None = None,
                      seed: int = SEED, progress: bool = True) -> tuple[DualEncoder, dict]:
    """Pretrain the Shapes dual encoder under ``prof``; returns the model and its metadata."""
    assert SHAPES_CLIP_KWARGS["vocab_size"] == len(shapes_vocab())
    n_train = prof.shapes_train if n_train is None else n_train
    epochs = prof.epochs(BASE_EPOCHS) if epochs is None else epochs
    config.seed_everything(seed)
    data = load_pretraining(n_train, prof.shapes_val, image_size=SHAPES_CLIP_KWARGS["image_size"],
                            max_shapes=MAX_SHAPES, seed=seed)
    with config.seeded(seed):
        model = DualEncoder(**SHAPES_CLIP_KWARGS)
    start = time.perf_counter()
    history = fit(model, data.train.select(["image", "text", "label"]),
                  data.val.select(["image", "text", "label"]), epochs=epochs, lr=2e-3,
                  batch_size=128, seed=seed, progress=progress, desc="shapes_clip")
    seconds = time.perf_counter() - start
    model.cpu().eval()
    objects = load_single_objects(1000, seed=seed + 1)
    rows = template_table(model, objects)
    meta = {"profile": prof.name, "n_train": n_train, "epochs": epochs, "batch_size": 128, "lr": 2e-3,
            "seed": seed, "max_shapes": MAX_SHAPES, "held_out": [list(c) for c in HELD_OUT],
            "train_seconds": round(seconds, 1), "device": str(config.device()),
            "machine": platform.machine(), "torch": str(torch.__version__),
            "final_val_loss": round(history.records[-1]["val_loss"], 4),
            "zero_shot": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                          for r in rows]}
    return model, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="shapes_clip", choices=["shapes_clip"])
    parser.add_argument("--profile", default=None, help="default: MMCOURSE_PROFILE, else 'full'")
    parser.add_argument("--check", action="store_true", help="only verify and describe the shipped file")
    args = parser.parse_args()
    if args.check:
        print(pretrained.metadata(args.name))
        return
    import os

    prof = config.profile(args.profile or os.environ.get(config.PROFILE_ENV) or "full")
    if prof.name != "full":
        print(f"note: training with the {prof.name!r} profile; the shipped file uses 'full'")
    model, meta = train_shapes_clip(prof)
    path = pretrained.save(model, args.name, SHAPES_CLIP_KWARGS, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its .sha256")
    for row in meta["zero_shot"]:
        print(row)


if __name__ == "__main__":
    main()
