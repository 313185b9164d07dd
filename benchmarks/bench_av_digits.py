"""AV-Digits difficulty: test accuracy of each modality alone and of their product-of-experts
fusion, with the default knobs, over several seeds (data split, noise and model init).

    python benchmarks/bench_av_digits.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mmcourse.baselines import modality_report
from mmcourse.config import seed_everything
from mmcourse.data.av_digits import DEFAULTS, load_av_digits

COLUMNS = ("image", "audio", "text", "fusion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"AV-Digits default knobs: {DEFAULTS}")
    print(f"{'seed':>4} " + " ".join(f"{c:>7}" for c in COLUMNS) + "   seconds")
    rows = []
    for seed in args.seeds:
        seed_everything(seed)
        start = time.perf_counter()
        report = modality_report(load_av_digits(seed=seed), seed=seed)
        rows.append([report[c] for c in COLUMNS])
        print(f"{seed:>4} " + " ".join(f"{v:7.3f}" for v in rows[-1])
              + f"   {time.perf_counter() - start:7.1f}", flush=True)
    medians = [statistics.median(col) for col in zip(*rows)]
    print("median " + " ".join(f"{v:7.3f}" for v in medians))
    print(f"fusion - best single modality (median): {medians[3] - max(medians[:3]):+.3f}")


if __name__ == "__main__":
    main()
