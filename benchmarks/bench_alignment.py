"""Alignment (chapter 12): every figure of the chapter, on the default-profile data.

It prints

* CTC: ``mmcourse.alignment.ctc_loss`` against ``torch.nn.functional.ctc_loss`` on random cases
  (repeats, target length 1, inputs just long enough, unreachable targets with zero_infinity):
  the largest relative difference in value and in gradient;
* the CTC recogniser (``CTCRecognizer``, 4 conv layers, 64 channels, batch norm; batch 16) trained
  on all 2,000 clean training strings for ``--epochs``: digit error rate on the 400
  held-out-voice test strings, greedy and prefix beam (K = 8), by jiwer and by our edit distance;
* the same recogniser trained and tested at the dataset's noise level (-6 dB SNR, AV-Digits'
  default), and the clean model on noisy strings;
* forced alignment on the clean test strings: the median and 90th-percentile boundary error in
  frames of each digit's start and end (spikes as onsets; ends by ``word_boundaries``, and by a
  blank penalty chosen on the validation split);
* DTW template matching (connected-word DTW, 1 / 5 / 10 templates per digit) on the same test
  strings, clean and noisy;
* seconds for each step (on a shared machine they are inflated by the other jobs).

    python benchmarks/bench_alignment.py [--epochs 20] [--dropout 0.3] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import jiwer
import numpy as np
import torch
import torch.nn.functional as F

from mmcourse.alignment import (
    TemplateMatcher,
    boundary_errors,
    ctc_loss,
    forced_align,
    greedy_decode,
    prefix_beam_search,
    word_boundaries,
)
from mmcourse.config import seed_everything
from mmcourse.data.digit_strings import BLANK, NOISY_SNR_DB, digits_to_text, load_digit_strings
from mmcourse.metrics import digit_error_rate
from mmcourse.models import CTCRecognizer
from mmcourse.train import fit


def ctc_agreement(cases: int = 60, seed: int = 0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    worst_v = worst_g = 0.0
    for c in range(cases):
        t, n = int(torch.randint(1, 40, (1,), generator=g)), 4
        v = int(torch.randint(2, 12, (1,), generator=g))
        blank = c % v
        symbols = torch.tensor([k for k in range(v) if k != blank])
        s = int(torch.randint(1, 8, (1,), generator=g))
        targets = symbols[torch.randint(0, len(symbols), (n, s), generator=g)]
        if c % 3 == 0:
            targets[:, 1:] = targets[:, :1]                                    # repeats
        il = torch.randint(1, t + 1, (n,), generator=g)
        il[0] = t
        tl = torch.randint(1, s + 1, (n,), generator=g)
        logits = (torch.randn(t, n, v, generator=g, dtype=torch.float64) * (1 + c % 5)).requires_grad_(True)
        for reduction in ("mean", "sum"):
            a = ctc_loss(logits.log_softmax(2), targets, il, tl, blank, reduction, zero_infinity=True)
            (ga,) = torch.autograd.grad(a, logits)
            b = F.ctc_loss(logits.log_softmax(2), targets, il, tl, blank, reduction, zero_infinity=True)
            (gb,) = torch.autograd.grad(b, logits)
            worst_v = max(worst_v, abs(a.item() - b.item()) / max(abs(b.item()), 1e-12))
            worst_g = max(worst_g, ((ga - gb).abs().max() / gb.abs().max().clamp(min=1e-12)).item())
    return worst_v, worst_g


def posteriors(model, split) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(split.tensors)
    return out.logits, split.tensors["audio_lengths"]


def der_of(model, split, beam: int = 8) -> dict:
    lp, lengths = posteriors(model, split)
    refs = split.meta["text"]
    greedy = [digits_to_text(h) for h in greedy_decode(lp, lengths, blank=BLANK)]
    beamed = [digits_to_text(prefix_beam_search(lp[i, :n], beam_width=beam, blank=BLANK))
              for i, n in enumerate(lengths.tolist())]
    ours = digit_error_rate([r.split() for r in refs], [h.split() for h in greedy])
    theirs = jiwer.wer(refs, greedy)
    assert abs(ours - theirs) < 1e-12, (ours, theirs)
    return {"greedy": theirs, f"beam K={beam}": jiwer.wer(refs, beamed)}


def alignment_errors(lp, lengths, split, blank_penalty: float = 0.0, grow: bool = True) -> np.ndarray:
    """``(digits, 2)`` start/end errors in frames over a split."""
    errs = []
    for i in range(len(split)):
        n = int(split.tensors["digit_lengths"][i])
        x = lp[i, : int(lengths[i])]
        a = forced_align(x, split.tensors["digits"][i, :n], blank=BLANK, blank_penalty=blank_penalty)
        pred = word_boundaries(x, a.spans, blank=BLANK) if grow else a.spans
        errs.append(boundary_errors(pred, split.meta["boundaries"][i]).numpy())
    return np.concatenate(errs)


def templates_of(split, per_digit: int):
    templates, labels = [], []
    for i in range(len(split)):
        n = int(split.tensors["digit_lengths"][i])
        for (s, e), d in zip(split.meta["boundaries"][i], split.tensors["digits"][i, :n].tolist()):
            if labels.count(d) < per_digit:
                templates.append(split.tensors["audio"][i, :, s:e].T.numpy())
                labels.append(d)
    return templates, labels


def template_der(strings, per_digit: int) -> float:
    frames = []                                                  # the mean frame between digits
    for i in range(100):
        inside = np.zeros(int(strings.train.tensors["audio_lengths"][i]), dtype=bool)
        for s, e in strings.train.meta["boundaries"][i]:
            inside[s:e] = True
        frames.append(strings.train.tensors["audio"][i, :, :len(inside)].numpy()[:, ~inside])
    silence = np.concatenate(frames, axis=1).mean(1)
    matcher = TemplateMatcher(*templates_of(strings.train, per_digit), silence)
    hyps = [digits_to_text(matcher.match(strings.test.tensors["audio"][i, :, :int(n)].T.numpy())[0])
            for i, n in enumerate(strings.test.tensors["audio_lengths"])]
    return jiwer.wer(strings.test.meta["text"], hyps)


def train(strings, epochs: int, seed: int, dropout: float) -> tuple[CTCRecognizer, float]:
    seed_everything(seed)
    model = CTCRecognizer(channels=64, conv_layers=4, rnn=False, norm=True, dropout=dropout)
    start = time.perf_counter()
    fit(model, strings.train, strings.val, epochs=epochs, lr=3e-3, batch_size=16, seed=seed,
        desc="CTCRecognizer")
    return model, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}, {args.epochs} epochs, "
          f"dropout {args.dropout}")

    start = time.perf_counter()
    v, g = ctc_agreement()
    print(f"\nCTC loss vs F.ctc_loss, 60 random cases x 2 reductions: max relative difference "
          f"value {v:.1e}, gradient {g:.1e} (target <= 1e-4)  [{time.perf_counter() - start:.1f} s]")

    clean = load_digit_strings(seed=args.seed)
    noisy = load_digit_strings(seed=args.seed, snr_db=NOISY_SNR_DB)
    print(f"data: {len(clean.train)} / {len(clean.val)} / {len(clean.test)} strings, "
          f"voices {clean.info['voices']}")

    model, seconds = train(clean, args.epochs, args.seed, args.dropout)
    print(f"\nclean: trained in {seconds:.0f} s")
    clean_der = der_of(model, clean.test)
    print("  digit error rate, clean test (held-out voices):",
          ", ".join(f"{k} {x:.2%}" for k, x in clean_der.items()), "(target <= 5 %)")
    print("  clean model on noisy test (-6 dB):",
          ", ".join(f"{k} {x:.2%}" for k, x in der_of(model, noisy.test).items()))

    # forced alignment -------------------------------------------------------------------------
    start = time.perf_counter()
    lp_val, len_val = posteriors(model, clean.val)
    lp, lengths = posteriors(model, clean.test)
    spikes = alignment_errors(lp, lengths, clean.test, grow=False)
    grown = alignment_errors(lp, lengths, clean.test)
    penalties = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0)
    val_scores = {b: np.median(alignment_errors(lp_val, len_val, clean.val, b, grow=False).sum(1))
                  for b in penalties}
    best = min(val_scores, key=val_scores.get)
    penalised = alignment_errors(lp, lengths, clean.test, best, grow=False)

    def row(name, e):
        print(f"  {name:44} start median {np.median(e[:, 0]):.0f}, p90 {np.percentile(e[:, 0], 90):.0f}; "
              f"end median {np.median(e[:, 1]):.0f}, p90 {np.percentile(e[:, 1], 90):.0f}; "
              f"both within 2: {np.mean(e <= 2):.0%}")

    print(f"\nforced alignment, {len(spikes)} clean test digits, error in frames (30 ms)"
          f"  [{time.perf_counter() - start:.1f} s]")
    row("spans (the spikes)", spikes)
    row("spans grown over non-blank frames", grown)
    row(f"blank penalty {best:g} (chosen on val)", penalised)
    nxt = []
    for i in range(len(clean.test)):
        n = int(clean.test.tensors["digit_lengths"][i])
        a = forced_align(lp[i, : int(lengths[i])], clean.test.tensors["digits"][i, :n], blank=BLANK)
        b = a.spans.clone()
        b[:-1, 1] = a.spans[1:, 0]                     # a digit ends where the next one starts
        b[-1, 1] = int(lengths[i])
        nxt.append(boundary_errors(b, clean.test.meta["boundaries"][i]).numpy())
    row("spikes as onsets, ends at the next onset", np.concatenate(nxt))

    # noisy ------------------------------------------------------------------------------------
    model_noisy, seconds = train(noisy, args.epochs, args.seed, args.dropout)
    print(f"\nnoisy (-6 dB): trained in {seconds:.0f} s")
    print("  digit error rate, noisy test:",
          ", ".join(f"{k} {x:.2%}" for k, x in der_of(model_noisy, noisy.test).items()))
    lp_n, len_n = posteriors(model_noisy, noisy.test)
    row("forced alignment, noisy (spikes)", alignment_errors(lp_n, len_n, noisy.test, grow=False))

    # DTW template matching --------------------------------------------------------------------
    print("\nDTW template matching (connected-word DTW), same test strings:")
    for per_digit in (1, 5, 10):
        start = time.perf_counter()
        c = template_der(clean, per_digit)
        n = template_der(noisy, per_digit)
        print(f"  {per_digit:2d} templates per digit: digit error rate clean {c:.2%}, noisy {n:.2%}"
              f"  [{time.perf_counter() - start:.1f} s]")
    print(f"  CTC recogniser (greedy): clean {clean_der['greedy']:.2%}")


if __name__ == "__main__":
    main()
