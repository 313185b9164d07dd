"""Every chapter's model on the CPU and on the GPU: speed, memory, fit() overhead, full profile.

Sections (each a markdown table, printed row by row, so a run cut short keeps what it did):

* ``throughput``: training samples/s of ``fit()`` (one timed epoch of ``--cpu-steps`` /
  ``--gpu-steps`` batches, after an untimed warm-up epoch) on the CPU (fp32) and, when CUDA is
  present, on the GPU (AMP, bf16 where supported); the GPU/CPU ratio; the GPU memory the
  training run adds on top of the resident data (``max_memory_allocated`` − allocated before);
  and the host synchronisations per step (``torch.cuda.set_sync_debug_mode``).
* ``full``: each chapter's model, sized by the run profile (``--profile``; ``full`` on a GPU),
  trained on the profile's data for the profile's epochs, within a time budget; wall time and
  the figure reached on the test split.
* ``overhead``: ``fit()`` against a bare PyTorch loop (``bench_models.bare_loop``) on the GPU,
  fp32, same model, data and steps (the same comparison as ``bench_models.py``, there on CPU).
* ``compile``: ``fit(compile=True)`` against eager, AMP: compile time and steady samples/s.

    python benchmarks/bench_gpu.py [--quick] [--profile full] [--only cnn,captioner]
        [--sections throughput,full,overhead,compile] [--cpu-steps 3] [--gpu-steps 30]
        [--full-budget 150] [--compile cnn-mnist,captioner] [--deadline 290]

``--deadline`` (seconds for the whole run) or ``--end-at`` (a Unix time) makes every section skip
what no longer fits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import bare_loop  # noqa: E402  (the shared bare loop)

from mmcourse import config  # noqa: E402
from mmcourse.data.augment import shifted_copies  # noqa: E402
from mmcourse.models import (  # noqa: E402
    STRATEGIES,
    DualEncoder,
    Frames,
    SequenceEncoder,
    UnimodalClassifier,
    captioner_for,
    image_encoder,
    make_fusion,
    spectrogram_encoder,
)
from mmcourse.reports import caption_report, retrieval_report  # noqa: E402
from mmcourse.train import evaluate, fit, prepare  # noqa: E402

START = time.perf_counter()
END_AT = [float("inf")]  # the Unix time by which the run must be over


def time_left() -> float:
    return END_AT[0] - time.time()


# --------------------------------------------------------------------------------------------
# the chapters' models and data, sized by a profile
# --------------------------------------------------------------------------------------------
@dataclass
class Chapter:
    """One chapter's model: its data set, how to build it, its recipe and its figure."""

    name: str
    data: str                                   # "mnist", "av" or "shapes"
    build: Callable[[config.Profile, object], torch.nn.Module]
    base_epochs: int                            # the default profile's; scaled by the profile
    lr: float = 1e-3
    clip: float | None = None
    score: Callable[[torch.nn.Module, object], tuple[str, float]] | None = None  # default: accuracy


def _classifier_score(model, splits) -> tuple[str, float]:
    return "test accuracy", evaluate(model, splits.test, batch_size=1024)["accuracy"]


def _retrieval_score(model, splits) -> tuple[str, float]:
    return "test i2t R@1", retrieval_report(model, splits.test)["i2t_R@1"]


def _caption_score(model, splits) -> tuple[str, float]:
    return "test exact match (greedy)", caption_report(model, splits.test)["exact_match"]



def _captioner(p: config.Profile, data) -> torch.nn.Module:
    return captioner_for(data.info["vocab"], data.info["image_size"], p)


def chapters() -> list[Chapter]:
    s = lambda p: p.model_scale  # noqa: E731
    out = [
        Chapter("cnn-mnist", "mnist", lambda p, d: UnimodalClassifier(
            image_encoder(1, 28, out_dim=64 * s(p), width=16 * s(p)), "image"), 6),
        Chapter("cnn-audio", "av", lambda p, d: UnimodalClassifier(
            spectrogram_encoder(out_dim=64 * s(p), width=16 * s(p)), "audio"), 6),
        Chapter("gru-audio", "av", lambda p, d: UnimodalClassifier(Frames(SequenceEncoder(
            input_dim=32, hidden=64 * s(p), out_dim=64 * s(p))), "audio"), 8),
        Chapter("gru-text", "av", lambda p, d: UnimodalClassifier(SequenceEncoder(
            len(d.info["vocab"]), hidden=64 * s(p), out_dim=64 * s(p)), "text"), 4),
    ]
    for strategy in STRATEGIES:
        out.append(Chapter(f"fusion-{strategy}", "av", lambda p, d, st=strategy: make_fusion(
            st, d, dim=64 * s(p), width=16 * s(p), seed=0), 10))
    out.append(Chapter("dual-encoder", "shapes", lambda p, d: DualEncoder(
        len(d.info["vocab"]), image_size=d.info["image_size"], width=32 * s(p),
        hidden=128 * s(p)), 11, score=_retrieval_score))
    out.append(Chapter("captioner", "shapes", _captioner, 12, lr=2e-3, clip=1.0, score=_caption_score))
    return out


def load_data(p: config.Profile, needed: set[str], seed: int = 0) -> dict:
    """The splits each data set needs under profile ``p``; the AV-Digits training splits are
    ``p.av_copies`` shifted copies (``mmcourse.data.augment``), the Shapes sizes the profile's."""
    from mmcourse.data.av_digits import clean_av_digits, load_av_digits
    from mmcourse.data.base import Splits
    from mmcourse.data.shapes import load_shapes

    out = {}
    if "mnist" in needed:
        clean = clean_av_digits(seed=seed)
        train, val, test = (x.select(["image", "label"]) for x in clean)
        out["mnist"] = Splits(shifted_copies(train, p.av_copies, seed=seed), val, test, info=clean.info)
    if "av" in needed:
        av = load_av_digits(seed=seed)
        out["av"] = Splits(shifted_copies(av.train, p.av_copies, seed=seed), av.val, av.test,
                           info=av.info)
    if "shapes" in needed:
        out["shapes"] = load_shapes(profile=p, seed=seed)
    return out


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------
def guarded(name: str, columns: int, work: Callable[[], None]) -> None:
    """Run one table row's ``work``; an error prints as that row (traceback on stderr) and the
    benchmark goes on with the next row, so one failure does not hide every later figure."""
    try:
        work()
    except Exception as err:
        traceback.print_exc()
        message = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:100]}"
        print(f"| {name} | error: {message} |" + " |" * (columns - 2), flush=True)


def _sync(dev) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def steady_rate(chapter, p, splits, dev, steps: int, batch: int, amp: bool, compile: bool = False):
    """Samples/s of one fit() epoch of ``steps`` batches after an untimed warm-up epoch on
    the same data (both epochs in one fit() call, so a compiled model is compiled once)."""
    data = prepare(splits.train.subset(range(min(len(splits.train), steps * batch))), dev)
    torch.manual_seed(0)
    model = chapter.build(p, splits)
    before = torch.cuda.memory_allocated() if dev.type == "cuda" else 0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    hist = fit(model, data, epochs=2, batch_size=batch, device=dev, amp=amp, lr=chapter.lr,
               progress=False, compile=compile)
    peak = (torch.cuda.max_memory_allocated() - before) / 2**20 if dev.type == "cuda" else None
    return {"rate": len(data) / hist.records[1]["seconds"], "first": hist.records[0]["seconds"],
            "peak_mib": peak, "loss": hist.last["train_loss"], "model": model, "data": data}


def syncs_per_step(model, data, dev, batch: int) -> float:
    """Synchronising CUDA calls per training step, from one more fit() epoch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit(model, data, epochs=1, batch_size=batch, device=dev, progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    count = sum("synchroniz" in str(w.message) for w in caught)
    return count / -(-len(data) // batch)


def section_throughput(todo, p, data, gpu, args) -> dict:
    print(f"\n## throughput: fit() training samples/s, profile {p.name!r}, batch {p.batch_size}; "
          f"CPU fp32 ({torch.get_num_threads()} threads, {args.cpu_steps} timed steps)"
          + (f", GPU AMP {_amp_name()} ({args.gpu_steps} timed steps)" if gpu else ", no GPU"))
    print("| model | params | CPU samples/s | GPU samples/s | GPU/CPU | GPU MiB (training) "
          "| syncs/step |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rates = {}
    for ch in todo:
        if time_left() < 20:
            print(f"| {ch.name} | skipped: time budget | | | | | |", flush=True)
            continue
        guarded(ch.name, 7, lambda ch=ch: _throughput_row(ch, p, data[ch.data], gpu, args, rates))
    return rates


def _throughput_row(ch, p, splits, gpu, args, rates: dict) -> None:
    cpu_run = steady_rate(ch, p, splits, torch.device("cpu"), args.cpu_steps, p.batch_size, amp=False)
    params = sum(q.numel() for q in cpu_run["model"].parameters())
    row = [ch.name, f"{params:,}", f"{cpu_run['rate']:.0f}", "-", "-", "-", "-"]
    if gpu:
        run = steady_rate(ch, p, splits, gpu, args.gpu_steps, p.batch_size, amp=True)
        rates[ch.name] = run["rate"]
        row[3:] = [f"{run['rate']:.0f}", f"{run['rate'] / cpu_run['rate']:.1f}x",
                   f"{run['peak_mib']:.0f}",
                   f"{syncs_per_step(run['model'], run['data'], gpu, p.batch_size):.2f}"]
    print("| " + " | ".join(row) + " |", flush=True)


def section_overhead(todo, p, data, gpu, args) -> None:
    print(f"\n## fit() vs a bare PyTorch loop on the GPU: fp32, {args.gpu_steps} steps of batch "
          f"{p.batch_size}, median of {args.repeats} interleaved runs after a warm-up")
    print("| model | bare loop samples/s | fit() samples/s | fit/bare time |")
    print("|---|---:|---:|---:|")
    for ch in todo:
        if time_left() < 15:
            print(f"| {ch.name} | skipped: time budget | | |", flush=True)
            continue
        guarded(ch.name, 4, lambda ch=ch: _overhead_row(ch, p, data[ch.data], gpu, args))


def _overhead_row(ch, p, splits, gpu, args) -> None:
    train = prepare(splits.train.subset(range(min(len(splits.train),
                                                  args.gpu_steps * p.batch_size))), gpu)
    warm = train.subset(range(min(len(train), 2 * p.batch_size)))
    bare_loop(ch.build(p, splits).to(gpu), warm.tensors, 1, p.batch_size, gpu)
    fit(ch.build(p, splits), warm, epochs=1, batch_size=p.batch_size, device=gpu, amp=False,
        progress=False)
    times = {"bare": [], "fit": []}
    for _ in range(args.repeats):
        torch.manual_seed(0)
        model = ch.build(p, splits).to(gpu)
        start = time.perf_counter()
        bare_loop(model, train.tensors, 1, p.batch_size, gpu)
        times["bare"].append(time.perf_counter() - start)
        torch.manual_seed(0)
        model = ch.build(p, splits)
        start = time.perf_counter()
        fit(model, train, epochs=1, batch_size=p.batch_size, device=gpu, amp=False, progress=False)
        _sync(gpu)
        times["fit"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(train)
    print(f"| {ch.name} | {n / med['bare']:.0f} | {n / med['fit']:.0f} | "
          f"{med['fit'] / med['bare']:.3f} |", flush=True)


def section_full(todo, p, data, dev, args) -> None:
    budget = min(args.full_budget, max(0.0, time_left() - args.reserve))
    print(f"\n## profile {p.name!r} on {dev}: each chapter trained for {p.epoch_scale:g} x its base "
          f"epochs (batch {p.batch_size}, AdamW + cosine schedule, "
          f"{'AMP ' + _amp_name() if dev.type == 'cuda' else 'fp32'}), "
          f"{budget:.0f} s shared by {len(todo)} chapters")
    print("| model | train samples | epochs done / planned | train s | s/epoch | figure | value |")
    print("|---|---:|---:|---:|---:|---|---:|")
    section_end = time.perf_counter() + budget
    for i, ch in enumerate(todo):
        share = (section_end - time.perf_counter()) / (len(todo) - i)
        if share < 2:
            print(f"| {ch.name} | skipped: time budget | | | | | |", flush=True)
            continue
        guarded(ch.name, 7, lambda ch=ch, share=share: _full_row(ch, p, data[ch.data], dev, share))


def _full_row(ch, p, splits, dev, share: float) -> None:
    train = prepare(splits.train, dev)
    torch.manual_seed(0)
    model = ch.build(p, splits)
    planned = p.epochs(ch.base_epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=ch.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, planned)
    start, done, last = time.perf_counter(), 0, 0.0
    # one epoch at least; another only if it should end within this chapter's share
    while done < planned and (done == 0 or time.perf_counter() - start + last <= share):
        hist = fit(model, train, epochs=1, optimizer=opt, scheduler=sched,
                   batch_size=p.batch_size, device=dev, seed=done, clip_grad_norm=ch.clip,
                   progress=False)
        last, done = hist.last["seconds"], done + 1
    _sync(dev)
    seconds = time.perf_counter() - start
    model.eval()
    name, value = (ch.score or _classifier_score)(model, splits)
    print(f"| {ch.name} | {len(train)} | {done} / {planned} | {seconds:.1f} | "
          f"{seconds / done:.2f} | {name} | {value:.3f} |", flush=True)


def section_compile(todo, p, data, gpu, args) -> None:
    print(f"\n## torch.compile: fit(compile=True) vs eager, AMP, {args.gpu_steps} steps of batch "
          f"{p.batch_size}")
    print("| model | eager samples/s | compiled samples/s | compiled/eager | first epoch s "
          "(compile) | loss eager | loss compiled |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for ch in todo:
        if time_left() < 60:
            print(f"| {ch.name} | skipped: time budget | | | | | |", flush=True)
            continue
        # a missing compiler toolchain is a finding, not a crash: guarded
        guarded(ch.name, 7, lambda ch=ch: _compile_row(ch, p, data[ch.data], gpu, args))


def _compile_row(ch, p, splits, gpu, args) -> None:
    base = steady_rate(ch, p, splits, gpu, args.gpu_steps, p.batch_size, amp=True)
    run = steady_rate(ch, p, splits, gpu, args.gpu_steps, p.batch_size, amp=True, compile=True)
    print(f"| {ch.name} | {base['rate']:.0f} | {run['rate']:.0f} | {run['rate'] / base['rate']:.2f} "
          f"| {run['first']:.1f} | {base['loss']:.4f} | {run['loss']:.4f} |", flush=True)


def _amp_name() -> str:
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None,
                        help="run profile (default: 'full' with a GPU, else MMCOURSE_PROFILE or 'default')")
    parser.add_argument("--only", default=None, help="comma-separated substrings of chapter names")
    parser.add_argument("--sections", default="throughput,full,overhead,compile")
    parser.add_argument("--cpu-steps", type=int, default=3)
    parser.add_argument("--gpu-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-budget", type=float, default=150.0,
                        help="seconds shared by the chapters' full-profile runs")
    parser.add_argument("--compile", default="cnn-mnist,captioner",
                        help="chapters to measure with torch.compile ('' for none)")
    parser.add_argument("--deadline", type=float, default=None, help="seconds for the whole run")
    parser.add_argument("--end-at", type=float, default=None,
                        help="Unix time by which the whole run must be over (counts start-up too)")
    parser.add_argument("--reserve", type=float, default=0.0,
                        help="seconds the full section leaves for the sections after it")
    parser.add_argument("--quick", action="store_true",
                        help="fewer steps and repeats, no compile: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.cpu_steps, args.gpu_steps, args.repeats = 1, 5, 1
        args.compile = ""
    if args.deadline is not None:
        END_AT[0] = time.time() - (time.perf_counter() - START) + args.deadline
    if args.end_at is not None:
        END_AT[0] = min(END_AT[0], args.end_at)
    gpu = torch.device("cuda") if torch.cuda.is_available() else None
    p = config.profile(args.profile or ("full" if gpu else None))
    torch.manual_seed(0)  # not seed_everything: deterministic kernels would skew the timings
    todo = [c for c in chapters() if not args.only or any(s in c.name for s in args.only.split(","))]
    sections = set(args.sections.split(","))
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          + (f"GPU {torch.cuda.get_device_name()}" if gpu else "GPU absent: CPU figures only")
          + f", {torch.get_num_threads()} CPU threads, profile {p}")
    start = time.perf_counter()
    data = load_data(p, {c.data for c in todo})
    print(f"data loaded in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{k} train {len(v.train)}" for k, v in data.items()), flush=True)
    if "throughput" in sections:
        section_throughput(todo, p, data, gpu, args)
    if "full" in sections:
        section_full(todo, p, data, gpu or torch.device("cpu"), args)
    if gpu and "overhead" in sections:
        section_overhead(todo, p, data, gpu, args)
    if gpu and "compile" in sections and args.compile:
        names = args.compile.split(",")
        section_compile([c for c in chapters() if c.name in names and c.data in data], p, data, gpu,
                        args)
    print(f"\ntotal {time.perf_counter() - START:.0f} s")


if __name__ == "__main__":
    main()
