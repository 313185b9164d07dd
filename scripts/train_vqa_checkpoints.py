"""Train the chapter-13 checkpoints shipped in ``mmcourse/checkpoints/`` (VQA).

    python scripts/train_vqa_checkpoints.py [--only shapes_qa] [--threads 1]

* ``easy_vqa_single``: the benchmark's model, written by ``benchmarks/bench_vqa.py --save
  easy_vqa_single`` (run as a subprocess here, with the script's default recipe: the
  single-stream transformer on all easy-VQA training questions for 32 epochs, best epoch by
  validation accuracy; about 15 minutes of CPU on one thread).
* ``shapes_qa_product`` and ``shapes_qa_single``: the element-wise-product model and the
  single-stream transformer trained on **the same** Shapes-QA data, epochs, batch size and
  schedule (AdamW, cosine), each keeping its best epoch by validation accuracy; the test split
  (``n_test`` scenes, seed 0) is scored once at the end, per question type, and recorded in the
  checkpoint's metadata. The notebook loads these instead of training them.
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
from mmcourse.data.shapes_qa import load_shapes_qa
from mmcourse.models.vqa import accuracy_by_type
from mmcourse.models.vqa_transformers import make_vqa_model, model_kwargs
from mmcourse.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
#: the Shapes-QA budget both models share, and the transformer's size
SHAPES_QA = {"n_train": 6000, "n_val": 300, "n_test": 500, "epochs": 12, "batch_size": 64}
LR = {"product": 3e-3, "single": 1e-3}
OVERRIDES = {"product": {}, "single": {"patch": 2, "layers": 3}}


def train_shapes_qa(kind: str, data, *, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """One Shapes-QA model on the shared budget; returns it and its metadata (test per type)."""
    config.seed_everything(seed)
    with config.seeded(seed):
        model = make_vqa_model(kind, data.info, **OVERRIDES[kind])
    epochs = SHAPES_QA["epochs"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR[kind], weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    start = time.perf_counter()
    history = fit(model, data.train, data.val, epochs=epochs, batch_size=SHAPES_QA["batch_size"],
                  optimizer=optimizer, scheduler=scheduler, monitor="val_accuracy", patience=epochs,
                  seed=seed, desc=kind, device="cpu")
    seconds = time.perf_counter() - start
    model.eval()
    out = evaluate(model, data.test, return_outputs=True, device="cpu")
    test = accuracy_by_type(out["logits"].argmax(1), out["targets"], data.test.tensors["qtype"],
                            data.info["question_types"])
    meta = {**SHAPES_QA, "lr": LR[kind], "seed": seed, "kind": kind, "best_epoch": history.best_epoch,
            "val_accuracy": [round(r["val_accuracy"], 4) for r in history.records],
            "test_accuracy": {k: round(v, 4) for k, v in test.items()}, "train_seconds": round(seconds, 1),
            "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
            "script": "scripts/train_vqa_checkpoints.py"}
    print(f"{kind}: best epoch {history.best_epoch}/{epochs}, {seconds:.0f} s, test {meta['test_accuracy']}",
          flush=True)
    return model, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["easy_vqa", "shapes_qa"], help="train one data set's checkpoints")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only in (None, "shapes_qa"):
        data = load_shapes_qa(SHAPES_QA["n_train"], SHAPES_QA["n_val"], SHAPES_QA["n_test"], seed=0)
        for kind in ("product", "single"):
            model, meta = train_shapes_qa(kind, data)
            print("saved", pretrained.save(model, f"shapes_qa_{kind}",
                                           model_kwargs(kind, data.info, **OVERRIDES[kind]), meta))
    if args.only in (None, "easy_vqa"):
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_vqa.py"), "--threads",
                        str(args.threads), "--save", "easy_vqa_single"], check=True)


if __name__ == "__main__":
    main()
