"""How fast each explorer answers: median and worst milliseconds per interaction.

An interaction is what a slider or dropdown does: ``explorer.update(control=value)``, i.e. the
update function, the matplotlib redraw and the PNG encoding (the browser adds the kernel
round-trip and the image swap on top; tests/test_browser.py prints those). The explorers are
built the way the chapters build them, on the data sizes the gallery notebook uses, with
untrained models (an untrained captioner writes the longest captions: the worst case for
sampling, which is decoded on demand). Every interaction changes something, so nothing is a
no-op; each explorer runs its list of interactions ``--rounds`` times.

    python benchmarks/bench_widgets.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F


def explorers():
    """``(name, build seconds, explorer, interactions)`` for the six explorers."""
    from mmcourse.data.av_digits import load_av_digits
    from mmcourse.data.shapes import load_shapes
    from mmcourse.models import Captioner, DualEncoder, TinyCausalDecoder, make_fusion
    from mmcourse.widgets import (
        attention_explorer,
        decoding_explorer,
        fusion_explorer,
        quality_explorer,
        retrieval_explorer,
        softmax_explorer,
    )

    torch.manual_seed(0)
    shapes = load_shapes(200, 10, 200, seed=0)
    vocab = shapes.info["vocab"]
    av = load_av_digits(seed=0)
    train, test = (s.select(["image", "audio", "label"]) for s in (av.train, av.test))
    models = {s: make_fusion(s, train, seed=0) for s in ("early", "late")}
    tokens, lengths = shapes.test.tensors["text"][:8], shapes.test.tensors["length"][:8]
    words = [[vocab.itos[t] for t in row[:n]] for row, n in zip(tokens.tolist(), lengths)]
    levels = (0.0, 0.5, 1.0, 2.0, 3.0)
    builders = {
        "softmax": lambda: softmax_explorer(models["early"], test.subset(slice(0, 100))),
        "attention": lambda: attention_explorer(TinyCausalDecoder(len(vocab), 32, 2, 2, 12),
                                                {"text": F.pad(tokens, (0, 1))}, labels=words),
        "retrieval": lambda: retrieval_explorer(DualEncoder(len(vocab)), shapes.test, n=200),
        "decoding": lambda: decoding_explorer(Captioner(len(vocab), vocab=vocab), shapes.test, max_images=16),
        "fusion": lambda: fusion_explorer(models, test, n=300),
        "quality": lambda: quality_explorer(models["early"], test, n=300, noise_levels=levels),
    }
    interactions = {
        "softmax": [{"temperature": 0.3}, {"temperature": 0.5}, {"temperature": 2.0}, {"temperature": 5.0},
                    {"example": 1}, {"example": 2}, {"example": 3}, {"shift": 1.0}, {"shift": -2.0}],
        "attention": [{"example": 1}, {"example": 2}, {"example": 3}, {"layer": "blocks.1.self_attn"},
                      {"head": 1}, {"query": 2}, {"query": 4}, {"layer": "blocks.0.self_attn"}],
        "retrieval": [{"theta": -0.5}, {"theta": 0.0}, {"theta": 0.3}, {"theta": 0.6}, {"theta": 0.9},
                      {"query": 1}, {"query": 2}, {"direction": "i2t"}, {"direction": "t2i"}],
        "decoding": [{"image": 1}, {"image": 2}, {"method": "beam"}, {"beam": 5}, {"method": "sample"},
                     {"temperature": 1.5}, {"top_p": 0.5}, {"word": 3}, {"method": "greedy"}],
        "fusion": [{"level": 1}, {"level": 2}, {"level": 3}, {"level": 4}, {"strategy": "late"},
                   {"corruption": "audio: missing (fraction)"}, {"strategy": "early"}, {"level": 0}],
        "quality": [{"ratio": 2.0}, {"ratio": 5.0}, {"ratio": 20.0}, {"p_missing": 0.2}, {"p_missing": 0.6},
                    {"missing": "image"}, {"noise": 2}, {"noise": 4}, {"ratio": 1.0}],
    }
    for name, build in builders.items():
        start = time.perf_counter()
        ex = build()
        yield name, time.perf_counter() - start, ex, interactions[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over each explorer's interactions")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"explorer latency: torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at start")
    print(f"| {'explorer':<10} | {'build s':>7} | {'interactions':>12} | {'median ms':>9} | {'max ms':>7} |")
    print(f"|{'-' * 12}|{'-' * 9}|{'-' * 14}|{'-' * 11}|{'-' * 9}|")
    for name, build_s, ex, interactions in explorers():
        times = []
        for _ in range(args.rounds):
            initial = ex.values()
            for change in interactions:
                start = time.perf_counter()
                ex.update(**change)
                times.append(1000 * (time.perf_counter() - start))
            ex.update(**initial)
        print(f"| {name:<10} | {build_s:>7.1f} | {len(times):>12} | {statistics.median(times):>9.0f} | "
              f"{max(times):>7.0f} |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} at the end (the machine's other work slows every figure)")


if __name__ == "__main__":
    main()
