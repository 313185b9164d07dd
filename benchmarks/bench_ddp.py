"""Training throughput of fit() in one process and under torchrun with DDP (gloo, CPU).

Trains the chapter-02 CNN on MNIST-5k images with the same global batch in every set-up
(per-rank batch = global / ranks) and prints samples/s: the median over repeats of the median
epoch time (the first epoch, warm-up, left out), start-up (imports, process group) excluded.

    python benchmarks/bench_ddp.py [--repeats 3] [--epochs 4] [--global-batch 128] [--samples 2048]

Set-ups: one plain process with all cores' threads (what a student runs), one plain process
with 1 thread, and torchrun with 2 ranks of 1 thread each (torchrun's default). On a 2-core
machine 2 ranks can at best double the 1-thread figure; gradients cross a local socket (gloo).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    import torch

    from mmcourse.data.av_digits import clean_av_digits
    from mmcourse.models import ConvEncoder, UnimodalClassifier
    from mmcourse.train import distributed, fit

    distributed.setup()
    world = distributed.world_size()
    train = clean_av_digits(seed=0).train.select(["image", "label"]).subset(slice(0, args.samples))
    torch.manual_seed(0)
    model = UnimodalClassifier(ConvEncoder(1, (28, 28), width=16, out_dim=64), "image")
    history = fit(model, train, epochs=args.epochs, batch_size=args.global_batch // world,
                  progress=False, device="cpu")
    if distributed.is_main():
        Path(args.worker).write_text(json.dumps({"seconds": history["seconds"], "n": len(train),
                                                 "world": world, "threads": torch.get_num_threads()}))


def measure(cmd: list[str], env: dict, out: Path, timeout: float) -> dict:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, timeout=timeout, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, text=True)
    result = json.loads(out.read_text())
    result["wall"] = time.perf_counter() - start
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--samples", type=int, default=2048, help="training samples")
    p.add_argument("--timeout", type=float, default=300, help="seconds per run")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    cores = os.cpu_count() or 1
    me = [str(Path(__file__).resolve()), "--epochs", str(args.epochs), "--samples", str(args.samples),
          "--global-batch", str(args.global_batch)]
    setups = {
        f"1 process, {cores} threads": ([sys.executable, *me], str(cores)),
        "1 process, 1 thread": ([sys.executable, *me], "1"),
        "torchrun 2 ranks x 1 thread (gloo)": ([sys.executable, "-m", "torch.distributed.run",
                                                "--standalone", "--nproc_per_node=2", *me], "1"),
    }
    env = {**os.environ, "MMCOURSE_DEVICE": "cpu",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    print(f"fit() of the chapter-02 CNN, {args.samples} MNIST images, global batch {args.global_batch}, "
          f"{args.epochs} epochs (first left out), {args.repeats} repeats, {cores} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'set-up':<38}{'samples/s':>10}{'  (runs)':<30}{'start-up s':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for name, (cmd, threads) in setups.items():
            rates, startups = [], []
            for r in range(args.repeats):
                out = Path(tmp) / f"{len(rates)}-{r}.json"
                res = measure([*cmd, "--worker", str(out)], {**env, "OMP_NUM_THREADS": threads},
                              out, args.timeout)
                epoch = statistics.median(res["seconds"][1:] or res["seconds"])
                rates.append(res["n"] / epoch)
                startups.append(res["wall"] - sum(res["seconds"]))
            runs = ", ".join(f"{x:.0f}" for x in rates)
            print(f"{name:<38}{statistics.median(rates):>10.0f}  ({runs}){'':<{max(0, 26 - len(runs))}}"
                  f"{statistics.median(startups):>11.1f}", flush=True)


if __name__ == "__main__":
    main()
