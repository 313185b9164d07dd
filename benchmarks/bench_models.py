"""Every model of the course trained with fit() and with a bare PyTorch loop, same data and steps.

For each model: samples/s of a bare loop (data on the device, randperm, slice, forward, backward,
AdamW step) and of ``fit()`` over the same number of epochs, and their time ratio (goal: fit()
within 1.10x of the bare loop). After an untimed warm-up of both, runs are interleaved and
repeated; medians of one run.

    python benchmarks/bench_models.py [--repeats 5] [--epochs 1] [--device cpu] [--only captioner]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from mmcourse.config import device as pick_device
from mmcourse.data.av_digits import load_av_digits
from mmcourse.data.shapes import load_shapes
from mmcourse.models import (
    Captioner,
    DualEncoder,
    SequenceEncoder,
    UnimodalClassifier,
    image_encoder,
    make_fusion,
)
from mmcourse.train import fit, output_loss


def _loss(model, outputs, batch) -> torch.Tensor:
    """The objective fit() uses for a ModelOutput (mmcourse.train.output_loss)."""
    return output_loss(outputs, batch.get("label"))


def bare_loop(model, tensors: dict, epochs: int, batch_size: int, dev) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tensors = {k: v.to(dev) for k, v in tensors.items()}
    n = len(next(iter(tensors.values())))
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=g).to(dev)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = {k: v[idx] for k, v in tensors.items()}
            loss = _loss(model, model(batch), batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()


def cases() -> dict[str, tuple[Callable, object, int]]:
    """name → (model factory, training split, batch size)."""
    av = load_av_digits(seed=0)
    shapes = load_shapes(seed=0)
    vocab = len(av.info["vocab"])
    svocab = len(shapes.info["vocab"])
    image = av.train.select(["image", "label"])
    text = av.train.select(["text", "label"])
    return {
        "CNN (image)": (lambda: UnimodalClassifier(image_encoder(1, 28), "image"), image, 64),
        "GRU (text)": (lambda: UnimodalClassifier(SequenceEncoder(vocab, out_dim=64), "text"), text, 64),
        "early fusion": (lambda: make_fusion("early", av), av.train, 64),
        "late fusion": (lambda: make_fusion("late", av), av.train, 64),
        "cross-attention fusion": (lambda: make_fusion("cross-attention", av), av.train, 64),
        "dual encoder": (lambda: DualEncoder(svocab), shapes.train, 128),
        "captioner": (lambda: Captioner(svocab), shapes.train, 64),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default=None)
    parser.add_argument("--only", default=None, help="comma-separated substrings of model names")
    args = parser.parse_args()
    dev = pick_device(args.device)
    print(f"device {dev}, {torch.get_num_threads()} threads, {args.epochs} epoch(s), "
          f"median of {args.repeats} interleaved repeats, fp32 (amp off)")
    print(f"| {'model':<24} | {'samples':>7} | {'bare loop samples/s':>19} | {'fit() samples/s':>15} "
          f"| {'fit/bare time':>13} |")
    print(f"|{'-' * 26}|{'-' * 9}:|{'-' * 21}:|{'-' * 17}:|{'-' * 15}:|")
    for name, (factory, train, batch_size) in cases().items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        times = {"bare": [], "fit": []}
        bare_loop(factory().to(dev), train.subset(range(4 * batch_size)).tensors, 1, batch_size, dev)
        fit(factory(), train.subset(range(4 * batch_size)), epochs=1, batch_size=batch_size, device=dev,
            amp=False, progress=False)  # warm-up: allocator, cuDNN and kernel caches, untimed
        for _ in range(args.repeats):
            torch.manual_seed(0)
            model = factory().to(dev)
            start = time.perf_counter()
            bare_loop(model, train.tensors, args.epochs, batch_size, dev)
            times["bare"].append(time.perf_counter() - start)
            torch.manual_seed(0)
            model = factory().to(dev)
            start = time.perf_counter()
            fit(model, train, epochs=args.epochs, batch_size=batch_size, device=dev, amp=False,
                progress=False)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times["fit"].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        n = len(train) * args.epochs
        print(f"| {name:<24} | {n:>7} | {n / med['bare']:>19.0f} | {n / med['fit']:>15.0f} "
              f"| {med['fit'] / med['bare']:>13.3f} |", flush=True)


if __name__ == "__main__":
    main()
