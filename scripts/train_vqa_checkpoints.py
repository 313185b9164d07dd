"""Train the chapter-13 checkpoints shipped in ``mmcourse/checkpoints/`` (VQA).

    python scripts/train_vqa_checkpoints.py [--only shapes_qa] [--threads 1]

* ``easy_vqa_single``: the benchmark's model, written by ``benchmarks/bench_vqa.py --save
  easy_vqa_single`` (run as a subprocess here, with the script's default recipe: the
  single-stream transformer on all easy-VQA training questions for 32 epochs, best epoch by
  validation accuracy; about 15 minutes of CPU on one thread).
* ``shapes_qa_product`` and ``shapes_qa_single``: the element-wise-product model and the
  single-stream transformer trained on **the same** Shapes-QA questions (``curriculum=True``:
  the chapter's three types plus the easier ``query`` and ``position`` ones), epochs, batch size
  and schedule (AdamW, cosine), each keeping its best epoch by validation accuracy. Before it
  reads any question, the transformer's patch tagger is trained on the same training scenes to
  name what is where (``PatchTagger`` on ``tagging_split``: the object whose centre lies in each
  patch), then frozen inside it (``TaggedPatches``, ``load_tagger``).
  The test split (``n_test`` scenes, seed 0) is scored once at the end, per question type, and
  recorded in the checkpoint's metadata. The notebook loads these instead of training them.
  ``--no-tagging`` trains the transformer on plain patch embeddings instead (the ablation; nothing
  is saved).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from mmcourse import config, pretrained
from mmcourse.data.shapes_qa import CODE_FACTORS, NUM_CELL_CLASSES, load_shapes_qa, tagging_split
from mmcourse.models.patch_tagging import PatchTagger, load_tagger, tagging_accuracy
from mmcourse.models.vqa import accuracy_by_type
from mmcourse.models.vqa_transformers import make_vqa_model, model_kwargs
from mmcourse.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
#: the Shapes-QA budget both models share, and the transformer's size
SHAPES_QA = {"n_train": 6000, "n_val": 300, "n_test": 500, "curriculum": True, "epochs": 20, "batch_size": 64,
             "clip_grad_norm": 1.0}
LR = {"product": 3e-3, "single": 1e-3}
OVERRIDES = {"product": {}, "single": {"patch": 2, "layers": 3, "tagged": list(CODE_FACTORS)}}
#: the transformer's patch-tagging stage (its grid is the transformer's patch grid)
TAGGER = {"epochs": 60, "lr": 3e-3, "weight_decay": 0.05, "batch_size": 64}


def pretrain_patches(model, data, *, seed: int = 0) -> dict:
    """Train a ``PatchTagger`` of the transformer's patch sizes on the training scenes and load it,
    frozen, into ``model``; return its recipe and validation ``tagging_accuracy``."""
    recipe = model_kwargs("single", data.info, **OVERRIDES["single"])
    with config.seeded(seed):
        tagger = PatchTagger(NUM_CELL_CLASSES, data.info["image_size"],
                             **{k: recipe[k] for k in ("patch", "dim", "stem_width")})
    grid = tagger.patches.grid[0]                                       # square images: (grid, grid)
    train, val = tagging_split(data.train, grid), tagging_split(data.val, grid)
    fit(tagger, train, epochs=TAGGER["epochs"], lr=TAGGER["lr"], weight_decay=TAGGER["weight_decay"],
        batch_size=TAGGER["batch_size"], target="cells", seed=seed, desc="patch tagger", device="cpu")
    tagger.eval()
    with torch.no_grad():
        pred = tagger({"image": val.tensors["image"]}).logits.argmax(-1)
    scores = tagging_accuracy(pred, val.tensors["cells"])
    load_tagger(model, tagger)
    return {"grid": grid, **TAGGER, "val": {k: round(v, 4) for k, v in scores.items()}}


def train_shapes_qa(kind: str, data, *, seed: int = 0, tagging: bool = True):
    """One Shapes-QA model on the shared budget (the transformer first trains its patch tagger,
    unless ``tagging`` is false: then it reads plain patch embeddings); returns it and its
    metadata (test per type)."""
    overrides = {k: v for k, v in OVERRIDES[kind].items() if tagging or k != "tagged"}
    config.seed_everything(seed)
    with config.seeded(seed):
        model = make_vqa_model(kind, data.info, **overrides)
    start = time.perf_counter()
    tagging_meta = pretrain_patches(model, data, seed=seed) if "tagged" in overrides else None
    epochs = SHAPES_QA["epochs"]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=LR[kind], weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = fit(model, data.train, data.val, epochs=epochs, batch_size=SHAPES_QA["batch_size"],
                  optimizer=optimizer, scheduler=scheduler, monitor="val_accuracy", patience=epochs,
                  clip_grad_norm=SHAPES_QA["clip_grad_norm"], seed=seed, desc=kind, device="cpu")
    seconds = time.perf_counter() - start
    model.eval()
    out = evaluate(model, data.test, return_outputs=True, device="cpu")
    test = accuracy_by_type(out["logits"].argmax(1), out["targets"], data.test.tensors["qtype"],
                            data.info["question_types"])
    meta = {**SHAPES_QA, "lr": LR[kind], "seed": seed, "kind": kind, "best_epoch": history.best_epoch,
            "val_accuracy": [round(r["val_accuracy"], 4) for r in history.records],
            "test_accuracy": {k: round(v, 4) for k, v in test.items()}, "train_seconds": round(seconds, 1),
            "patch_tagging": tagging_meta,
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "script": "scripts/train_vqa_checkpoints.py"}
    name = kind if tagging else f"{kind} (no tagger)"
    print(f"{name}: best epoch {history.best_epoch}/{epochs}, {seconds:.0f} s, "
          f"patch tagging {tagging_meta and tagging_meta['val']}, test {meta['test_accuracy']}", flush=True)
    return model, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["easy_vqa", "shapes_qa"], help="train one data set's checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    parser.add_argument("--no-tagging", action="store_true",
                        help="ablation: the Shapes-QA transformer without patch tagging; saves nothing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "shapes_qa"):
        data = load_shapes_qa(SHAPES_QA["n_train"], SHAPES_QA["n_val"], SHAPES_QA["n_test"], seed=0,
                              curriculum=SHAPES_QA["curriculum"])
        if args.no_tagging:
            train_shapes_qa("single", data, tagging=False)
            return
        for kind in ("product", "single"):
            model, meta = train_shapes_qa(kind, data)
            print("saved", pretrained.save(model, f"shapes_qa_{kind}",
                                           model_kwargs(kind, data.info, **OVERRIDES[kind]), meta))
    if args.only in (None, "easy_vqa"):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_vqa.py"), "--threads",
                        str(args.threads), "--save", "easy_vqa_single"], check=True)


if __name__ == "__main__":
    main()
