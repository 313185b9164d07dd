"""``mmcourse train CHAPTER``: train a chapter's model end to end, outside a notebook.

    mmcourse train 07 --profile full --out runs/
    torchrun --standalone --nproc_per_node 2 -m mmcourse.train 07 --profile full --out runs/

One process, or several under ``torchrun`` (``fit()`` then trains with DDP; ``--batch-size`` is
per rank). Rank 0 writes ``OUT/<chapter>.pt`` (``save_checkpoint``: weights, optimizer state,
history, and the run's settings under ``extra``) and ``OUT/<chapter>.json`` (the settings, the
history as ``History.to_dict()`` and the test figures). In the chapter's notebook::

    history = load_checkpoint("runs/07.pt", model)          # the same model the recipe builds
    run = json.load(open("runs/07.json"));  History.from_dict(run["history"]).plot()

``--epochs`` and ``--limit`` (samples per split) make a tiny run for tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record

from mmcourse.config import Profile, profile, seed_everything, seeded
from mmcourse.train import distributed, evaluate, fit, save_checkpoint


@dataclass(frozen=True)
class Recipe:
    """How a chapter trains its model: data ``(profile, seed, limit) -> (train, val, test)``,
    the model built from the training split, and the notebook's epochs / lr / batch size."""

    title: str
    data: Callable
    model: Callable[[object, dict, Profile, int, argparse.Namespace], nn.Module]
    epochs: int
    lr: float
    batch_size: int
    cosine: bool = False


def _limit(splits, limit, keys=None):
    out = []
    for split in splits:
        split = split.select(keys) if keys else split
        out.append(split.subset(slice(0, limit)) if limit else split)
    return out


def _av_digits(keys, clean=False, augment=True):
    def load(p: Profile, seed: int, limit: int | None):
        from mmcourse.data import load_av_digits
        from mmcourse.data.augment import shifted_copies
        from mmcourse.data.av_digits import clean_av_digits

        splits = clean_av_digits(seed=seed) if clean else load_av_digits(seed=seed)
        train, val, test = _limit(splits, limit, keys)
        if augment and p.av_copies > 1:
            train = shifted_copies(train, p.av_copies, seed=seed)
        return (train, val, test), splits.info
    return load


def _shapes(p: Profile, seed: int, limit: int | None):
    from mmcourse.data import load_shapes

    sizes = {} if not limit else {"n_train": min(limit, p.shapes_train),
                                  "n_val": min(limit, p.shapes_val), "n_test": min(limit, p.shapes_test)}
    splits = load_shapes(seed=seed, profile=p, **sizes)
    return tuple(splits), splits.info


def _cnn(train, info, p, seed, args):
    from mmcourse.models import UnimodalClassifier, image_encoder

    with seeded(seed):
        return UnimodalClassifier(image_encoder(out_dim=64, width=16 * p.model_scale), "image")


def _gru(train, info, p, seed, args):
    from mmcourse.models import SequenceEncoder, UnimodalClassifier

    with seeded(seed):
        encoder = SequenceEncoder(vocab_size=len(info["vocab"]), hidden=64 * p.model_scale,
                                  out_dim=64, cell="gru")
        return UnimodalClassifier(encoder, "text")


def _fusion(strategy, modalities, width):
    def build(train, info, p, seed, args):
        from mmcourse.models import make_fusion

        return make_fusion(args.strategy or strategy, train, modalities=modalities, seed=seed,
                           width=width * p.model_scale, num_classes=10,
                           vocab_sizes={"text": len(info["vocab"])})
    return build


def _dual_encoder(train, info, p, seed, args):
    from mmcourse.models.retrieval import DualEncoder

    with seeded(seed):
        return DualEncoder(len(info["vocab"]), embed_dim=64, image_size=info["image_size"],
                           width=32 * p.model_scale)


def _captioner(train, info, p, seed, args):
    from mmcourse.models.transformer_captioning import captioner_for

    with seeded(seed):
        return captioner_for(info["vocab"], info["image_size"], p)


RECIPES: dict[str, Recipe] = {
    "02": Recipe("CNN on MNIST-5k images", _av_digits(["image", "label"], clean=True), _cnn,
                 epochs=5, lr=2e-3, batch_size=64),
    "03": Recipe("GRU reading the AV-Digits text hints", _av_digits(["text", "label"], augment=False),
                 _gru, epochs=8, lr=3e-3, batch_size=64),
    "05": Recipe("joint classifier, image + speech (early fusion)",
                 _av_digits(["image", "audio", "label"]), _fusion("early", ("image", "audio"), 16),
                 epochs=6, lr=2e-3, batch_size=64),
    "06": Recipe("fusion of image, speech and text (--strategy, default late)",
                 _av_digits(None), _fusion("late", None, 8), epochs=4, lr=2e-3, batch_size=64),
    "07": Recipe("CLIP-style dual encoder on Shapes", _shapes, _dual_encoder,
                 epochs=10, lr=1e-3, batch_size=128),
    "08": Recipe("captioner on Shapes (the profile's decoder)", _shapes, _captioner,
                 epochs=6, lr=5e-3, batch_size=32, cosine=True),
}


def chapter_key(name: str) -> str:
    """``"7"``, ``"07"`` or ``"07_cross_modal_retrieval"`` -> ``"07"``; else a clear error."""
    key = name.split("_")[0].zfill(2)
    if key not in RECIPES:
        raise SystemExit(f"mmcourse train: no trained model for chapter {name!r}; chapters: "
                         + ", ".join(f"{k} ({r.title})" for k, r in RECIPES.items()))
    return key


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmcourse train", description=__doc__.split("\n\n")[0])
    p.add_argument("chapter", help="chapter number: " + ", ".join(RECIPES))
    p.add_argument("--profile", default=None, help="run profile: default or full (else MMCOURSE_PROFILE)")
    p.add_argument("--out", default="runs", help="folder for <chapter>.pt and <chapter>.json")
    p.add_argument("--epochs", type=_positive, help="epochs (default: the chapter's, scaled by the profile)")
    p.add_argument("--limit", type=_positive, help="at most this many samples per split (tiny test runs)")
    p.add_argument("--batch-size", type=_positive, help="per-rank batch size (default: the chapter's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the chapter's)")
    p.add_argument("--strategy", help="chapters 05/06: the fusion strategy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def train(args: argparse.Namespace) -> dict | None:
    """Train one chapter's model; return the metrics written (on rank 0; ``None`` elsewhere)."""
    key = chapter_key(args.chapter)
    recipe = RECIPES[key]
    prof = profile(args.profile)
    rank_dev = distributed.setup()
    main = distributed.is_main()
    seed_everything(args.seed)
    (train_split, val, test), info = recipe.data(prof, args.seed, args.limit)
    model = recipe.model(train_split, info, prof, args.seed, args)
    epochs = args.epochs or prof.epochs(recipe.epochs)
    batch = args.batch_size or recipe.batch_size
    lr = args.lr if args.lr is not None else recipe.lr
    world = distributed.world_size()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if recipe.cosine else None
    settings = {"chapter": key, "title": recipe.title, "model": type(model).__name__,
                "profile": prof.name, "seed": args.seed, "epochs": epochs, "lr": lr,
                "per_rank_batch": batch, "world_size": world, "global_batch": batch * world,
                "backend": torch.distributed.get_backend() if distributed.active() else None,
                "device": str(rank_dev or model_device_name()), "limit": args.limit,
                "samples": {"train": len(train_split), "val": len(val), "test": len(test)},
                "torch": str(torch.__version__)}
    if main:
        print(f"mmcourse train {key}: {recipe.title} | profile {prof.name} | {world} rank(s) on "
              f"{settings['device']} ({settings['backend'] or 'no process group'}) | global batch "
              f"{batch * world} = {batch} x {world} | {epochs} epochs | {len(train_split)} samples",
              flush=True)
    start = time.perf_counter()
    history = fit(model, train_split, val, epochs=epochs, batch_size=batch, optimizer=optimizer,
                  scheduler=scheduler, seed=args.seed, progress=not args.quiet,
                  desc=f"chapter {key}", device=rank_dev)
    settings["train_seconds"] = round(time.perf_counter() - start, 3)
    if not main:
        return None
    out = Path(args.out)
    test_scores = evaluate(model, test)
    metrics = {**settings, "history": history.to_dict(), "last": history.last,
               "test": {k: v for k, v in test_scores.items() if k in ("loss", "accuracy", "n")}}
    ckpt = save_checkpoint(out / f"{key}.pt", model, optimizer=optimizer, history=history,
                           extra=settings)
    metrics["checkpoint"] = str(ckpt)
    (out / f"{key}.json").write_text(json.dumps(metrics, indent=1))
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items() if k != "n")
    print(f"test: {shown} | wrote {ckpt} and {out / f'{key}.json'}", flush=True)
    return metrics


def model_device_name() -> str:
    from mmcourse.config import device

    return str(device())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # under torchrun, @record puts a failing rank's traceback into torchrun's error summary
    (record(train) if distributed.launched() else train)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
