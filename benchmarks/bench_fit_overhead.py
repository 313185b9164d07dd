"""fit() against a bare PyTorch loop on the same model, data and number of steps.

Prints samples/s for each and the ratio (goal: fit() within 1.10x of the bare loop); medians
of several repeats, measured in one run.

    python benchmarks/bench_fit_overhead.py [--repeats 5] [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mmcourse.config import device as pick_device
from mmcourse.data.av_digits import clean_av_digits
from mmcourse.models import ConvEncoder, UnimodalClassifier
from mmcourse.train import fit


def make_model(dev):
    torch.manual_seed(0)
    return UnimodalClassifier(ConvEncoder(1, (28, 28), width=16, out_dim=64), "image").to(dev)


def bare_loop(model, images, labels, epochs, batch_size, dev):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images, labels = images.to(dev), labels.to(dev)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=g).to(dev)
        for start in range(0, len(images), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model({"image": images[idx]}), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    dev = pick_device(args.device)
    train = clean_av_digits().train.select(["image", "label"])
    n = len(train) * args.epochs
    times = {"bare loop": [], "fit()": []}
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        model = make_model(dev)
        start = time.perf_counter()
        bare_loop(model, train.tensors["image"], train.tensors["label"], args.epochs,
                  args.batch_size, dev)
        times["bare loop"].append(time.perf_counter() - start)
        model = make_model(dev)
        start = time.perf_counter()
        fit(model, train, epochs=args.epochs, batch_size=args.batch_size, device=dev,
            amp=False, progress=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times["fit()"].append(time.perf_counter() - start)
    print(f"device {dev}, {torch.get_num_threads()} threads, {args.epochs} epochs x "
          f"{len(train)} samples, batch {args.batch_size}, median of {args.repeats}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(f"{name:>10}: {n / t:9.0f} samples/s  ({t:.2f} s)")
    print(f"fit() / bare loop time ratio: {med['fit()'] / med['bare loop']:.3f}")


if __name__ == "__main__":
    main()
