"""Alignment (chapter 12): every figure of the chapter, on the default-profile data.

It prints

* CTC: ``mmcourse.alignment.ctc_loss`` against ``torch.nn.functional.ctc_loss`` on random cases
  (repeats, target length 1, inputs just long enough, unreachable targets with zero_infinity):
  the largest relative difference in value and in gradient;
* the CTC recogniser (``CTCRecognizer``, 4 conv layers, 64 channels, batch norm, dropout 0.1, band
  shift +-2 and SpecAugment masks of 4 mels / 5 frames -- chosen earlier over no perturbation on the
  validation voices, 4.2 % vs 6.7 %; batch 16, AdamW 3e-3, ``--epochs`` 40, keeping the weights
  of the epoch with the lowest validation loss, ``--patience`` 40) trained on 4,000 clean
  training strings -- the split's 2,000 and 2,000 more by the same training voices
  (``load_digit_strings(extra_train=2000)``): digit error rate on the 400 held-out-voice test
  strings, greedy and prefix beam (K = 8), by jiwer and by our edit distance;
* the same recogniser (4,000 strings, dropout ``--noisy-dropout``, ``--noisy-epochs`` 25, its
  last epoch) trained and tested at the dataset's noise level (-6 dB SNR, AV-Digits' default) --
  without the perturbation, which its validation voices rejected (digit error rate on them
  29.4 % without vs 88.1 % with), and the clean model on noisy strings;
* forced alignment on the test strings (clean, then noisy): the median and 90th-percentile error
  in frames of each digit's start and end, for the Viterbi spans themselves, spans widened by a
  blank penalty (prior normalisation), the spikes as onsets with ends at the next onset, and the
  spikes as onsets with ends by the voicing (``voiced_boundaries``) -- every knob (penalty,
  voicing threshold, spike shift) chosen on the validation voices; the last is the headline;
* DTW template matching (connected-word DTW, 1 / 5 / 10 templates per digit) on the same test
  strings, clean and noisy;
* seconds for each step (on a shared machine they are inflated by the other jobs).

The recipe is chosen on the **validation voices only** (11 voices, 200 strings; the test split
is never decoded while choosing): ``--validation-only`` trains one recogniser and prints the
validation digit error rate, overall and per voice; every run is logged in
``docs/benchmarks/bench_alignment_cpu_2026-11-30.txt``. Greedy validation DER, 25 epochs, 2,000
training strings (``--extra-train 0``) unless stated: dropout 0.1 3.31 % / 4.45 % (training
seeds 0 / 1) vs 0.2 8.14 % vs 0.3 4.20 % / 4.33 % (the earlier default 0.3 had been picked on
the test split; it is replaced); with dropout 0.1, a cosine schedule 3.82 %, per-utterance CMVN
(``cmvn=True``) 8.91 %, band shift +-4 4.07 %, and 2,000 more training strings 1.53 % -- the
one clear gain (the worst validation voice, Alicia, 33-37 % -> 14.9 %). The noisy recogniser's
dropout on its own (noisy) validation voices, 2,000 strings: 0.3 29.41 % vs 0.1 29.92 % (a tie;
0.3 kept). The 2,000 extra strings were chosen on clean validation only and are used for the
noisy recogniser too.
Then (session 4), the mean greedy validation DER over training seeds 0 / 1 / 2, 4,000 strings:
25 epochs (last epoch) 1.53 / 1.02 / 4.58 %, mean 2.38 %; 8,000 strings (``--extra-train 6000``)
2.54 / 2.54 % (stopped after two seeds: Alicia 28-30 %); a spectral tilt (``--tilt 0.4``)
1.53 / 1.65 / 2.80 %, mean 1.99 %; 25 epochs keeping the best epoch 1.53 / 1.02 / 1.65 %, mean
1.40 %; tilt + best of 25 1.53 / 1.65 / 0.51 %, mean 1.23 %; **40 epochs keeping the best epoch
1.02 / 0.25 / 0.64 %, mean 0.64 %** -- chosen.
Measured on test once per seed with the chosen recipe (the log): clean digit error rate greedy
4.02 / 5.24 / 4.02 % at training seeds 0 / 1 / 2, mean 4.43 % (beam 3.53 / 4.88 / 3.90 %, mean
4.10 %) -- the 5 % target is met at the default seed and on average over seeds (seed 1 alone is
at 5.24 % greedy); before, 25 epochs and the last epoch: 4.02 / 5.61 / 7.68 %, mean 5.77 %.
``--clean-only`` trains the clean recogniser and prints its test figure only (the seed spread).

    python benchmarks/bench_alignment.py [--epochs 40] [--dropout 0.1] [--extra-train 2000]
                                         [--augment 2 4 5] [--threads 1] [--seed 0]
    python benchmarks/bench_alignment.py --validation-only [--noisy] [--train-seed S] ...
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
    voiced_boundaries,
    voiced_frames,
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


def hypotheses(model, split, beam: int = 8) -> tuple[list[str], list[str]]:
    """The decoded strings of a split: greedy, and prefix beam search of width ``beam``."""
    lp, lengths = posteriors(model, split)
    greedy = [digits_to_text(h) for h in greedy_decode(lp, lengths, blank=BLANK)]
    beamed = [digits_to_text(prefix_beam_search(lp[i, :n], beam_width=beam, blank=BLANK))
              for i, n in enumerate(lengths.tolist())]
    return greedy, beamed


def der_of(model, split, beam: int = 8, hyps: tuple[list[str], list[str]] | None = None) -> dict:
    """Digit error rate, greedy and beam (``hyps``: ``hypotheses``' output, if already decoded)."""
    greedy, beamed = hyps or hypotheses(model, split, beam)
    refs = split.meta["text"]
    ours = digit_error_rate([r.split() for r in refs], [h.split() for h in greedy])
    theirs = jiwer.wer(refs, greedy)
    assert abs(ours - theirs) < 1e-12, (ours, theirs)
    return {"greedy": theirs, f"beam K={beam}": jiwer.wer(refs, beamed)}


def spans_of(lp, lengths, split, blank_penalty: float = 0.0) -> list:
    """The forced alignment's span of every digit, per utterance."""
    return [forced_align(lp[i, : int(lengths[i])], split.tensors["digits"][i, : int(n)], blank=BLANK,
                         blank_penalty=blank_penalty).spans
            for i, n in enumerate(split.tensors["digit_lengths"].tolist())]


def errors_of(split, bounds: list) -> np.ndarray:
    """``(digits, 2)`` start/end errors in frames over a split."""
    return np.concatenate([boundary_errors(b, t).numpy() for b, t in zip(bounds, split.meta["boundaries"])])


def voiced_of(split, spans: list, threshold: float, shift: int) -> list:
    """Spikes as onsets, the voicing as ends (``voiced_boundaries``)."""
    audio, lengths = split.tensors["audio"], split.tensors["audio_lengths"]
    return [voiced_boundaries(sp, voiced_frames(audio[i, :, : int(lengths[i])], threshold), shift)
            for i, sp in enumerate(spans)]


def choose_voicing(strings, spans_val: list) -> tuple[float, int]:
    """The voicing threshold (just above the silence floor, or a quantile of the frames' loudness)
    and the no-pause shift with the smallest median (then mean) boundary error on the
    **validation** voices."""
    val = strings.val
    loud = torch.cat([val.tensors["audio"][i, :, : int(n)].amax(0)
                      for i, n in enumerate(val.tensors["audio_lengths"])])
    thresholds = [float(strings.train.tensors["audio"].min()) + 0.01]
    thresholds += torch.quantile(loud, torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5])).tolist()
    scores = {}
    for threshold in thresholds:
        for shift in range(-4, 4):
            e = errors_of(val, voiced_of(val, spans_val, threshold, shift))
            scores[(threshold, shift)] = (np.median(e), e.mean())
    return min(scores, key=scores.get)


def row(name, e):
    print(f"  {name:48} start median {np.median(e[:, 0]):.0f}, p90 {np.percentile(e[:, 0], 90):.0f}; "
          f"end median {np.median(e[:, 1]):.0f}, p90 {np.percentile(e[:, 1], 90):.0f}; "
          f"both: median {np.median(e):.0f}, within 2: {np.mean(e <= 2):.0%}")


def alignment_report(model, strings, label: str) -> float:
    """Every forced-alignment row for one model and its data; returns the headline median."""
    start = time.perf_counter()
    lp_val, len_val = posteriors(model, strings.val)
    lp, lengths = posteriors(model, strings.test)
    spans = spans_of(lp, lengths, strings.test)
    spans_val = spans_of(lp_val, len_val, strings.val)
    print(f"\nforced alignment, {label}, {sum(len(x) for x in spans)} test digits, error in frames (30 ms)")
    row("spans (the spikes)", errors_of(strings.test, spans))
    penalties = (0.0, 2.0, 5.0, 10.0, 15.0, 20.0)
    val_scores = {b: np.median(errors_of(strings.val, spans_of(lp_val, len_val, strings.val, b)))
                  for b in penalties}
    best = min(val_scores, key=val_scores.get)
    penalised = spans_of(lp, lengths, strings.test, best)
    row(f"blank penalty {best:g} (prior normalisation; val)", errors_of(strings.test, penalised))
    nxt = []
    for sp, n in zip(spans, lengths.tolist()):
        b = sp.clone()
        b[:-1, 1] = sp[1:, 0]                     # a digit ends where the next one starts
        b[-1, 1] = int(n)
        nxt.append(b)
    row("spans as onsets, ends at the next onset", errors_of(strings.test, nxt))
    threshold, shift = choose_voicing(strings, spans_val)
    e = errors_of(strings.test, voiced_of(strings.test, spans, threshold, shift))
    row(f"spikes + voicing (threshold {threshold:.2f}, shift {shift:+d}; val)", e)
    print(f"  boundary error, median over starts and ends: {np.median(e):.0f} frames (target <= 2)"
          f"  [{time.perf_counter() - start:.1f} s]")
    return float(np.median(e))


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


def train(strings, epochs: int, seed: int, dropout: float, augment,
          cmvn: bool = False, cosine: bool = False, tilt: float = 0.0,
          patience: int | None = None) -> tuple[CTCRecognizer, float]:
    seed_everything(seed)
    model = CTCRecognizer(channels=64, conv_layers=4, rnn=False, norm=True, dropout=dropout,
                          augment=augment, cmvn=cmvn, tilt=tilt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)    # as fit(lr=3e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if cosine else None
    start = time.perf_counter()
    history = fit(model, strings.train, strings.val, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  batch_size=16, seed=seed, desc="CTCRecognizer", patience=patience)
    if patience is not None:     # fit restored the weights of the epoch with the lowest validation loss
        print(f"  kept epoch {history.best_epoch} of {len(history.records)} (lowest validation loss)")
    return model, time.perf_counter() - start


def voice_der(model, split) -> tuple[dict, dict]:
    """Digit error rate on a split (greedy and beam) and per voice (greedy)."""
    hyps = hypotheses(model, split)
    refs, voices = split.meta["text"], split.meta["speaker"]
    per = {v: jiwer.wer([r for r, w in zip(refs, voices) if w == v],
                        [h for h, w in zip(hyps[0], voices) if w == v]) for v in sorted(set(voices))}
    return der_of(model, split, hyps=hyps), per


def validation_report(args) -> None:
    """Train on the training voices (clean, or ``--noisy``); the validation voices' digit error rate,
    overall and per voice."""
    snr = NOISY_SNR_DB if args.noisy else None
    clean = load_digit_strings(seed=args.seed, extra_train=args.extra_train, snr_db=snr)
    augment = args.noisy_augment if args.noisy else args.augment
    print(f"train {len(clean.train)} strings by {len(set(clean.train.meta['speaker']))} voices")
    dropout = args.noisy_dropout if args.noisy else args.dropout
    model, seconds = train(clean, args.noisy_epochs if args.noisy else args.epochs, args.train_seed, dropout,
                           tuple(augment), args.cmvn, args.cosine, 0.0 if args.noisy else args.tilt,
                           None if args.noisy else args.patience)
    print(f"\n{'noisy' if args.noisy else 'clean'}: trained in {seconds:.0f} s")
    der, per = voice_der(model, clean.val)
    print(f"  digit error rate, validation voices ({len(clean.val)} strings):",
          ", ".join(f"{k} {x:.2%}" for k, x in der.items()))
    print("    per voice (greedy):", ", ".join(f"{v} {x:.1%}" for v, x in per.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="chosen on the validation voices")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout", type=float, default=0.1, help="chosen on the validation voices")
    parser.add_argument("--augment", type=int, nargs=3, default=(2, 4, 5),
                        metavar=("SHIFT", "FMASK", "TMASK"),
                        help="CTCRecognizer(augment=...): band shift, frequency mask, time mask")
    parser.add_argument("--train-seed", type=int, default=None,
                        help="seed of the initialisation, shuffling and dropout (default: --seed, which "
                             "also seeds the data and its voice split)")
    parser.add_argument("--cosine", action=argparse.BooleanOptionalAction, default=False,
                        help="cosine learning-rate decay from 3e-3 to 0 over the epochs")
    parser.add_argument("--cmvn", action=argparse.BooleanOptionalAction, default=False,
                        help="CTCRecognizer(cmvn=...): per-utterance, per-band mean/variance normalisation")
    parser.add_argument("--patience", type=int, default=40,
                        help="fit(patience=...): stop after that many epochs without a lower validation "
                             "loss and keep the best epoch's weights (>= --epochs: just keep the best epoch)")
    parser.add_argument("--tilt", type=float, default=0.0,
                        help="CTCRecognizer(tilt=...): random spectral tilt of clean training utterances")
    parser.add_argument("--extra-train", type=int, default=2000,
                        help="load_digit_strings(extra_train=...): more strings by the training voices")
    parser.add_argument("--validation-only", action="store_true",
                        help="train one recogniser and print its digit error rate on the "
                             "validation voices only (overall and per voice): the mode that chooses the "
                             "recipe; the test split is not decoded")
    parser.add_argument("--clean-only", action="store_true",
                        help="train the clean recogniser and print its test digit error rate only (no "
                             "alignment, noisy model or DTW): the test spread over --train-seed")
    parser.add_argument("--noisy", action="store_true",
                        help="with --validation-only: train and validate at the dataset's noise level")
    parser.add_argument("--noisy-epochs", type=int, default=25, help="the same, for the noisy recogniser "
                        "(which keeps its last epoch: --patience and --tilt are the clean recogniser's)")
    parser.add_argument("--noisy-dropout", type=float, default=0.3, help="the same, for the noisy recogniser")
    parser.add_argument("--noisy-augment", type=int, nargs=3, default=(0, 0, 0),
                        metavar=("SHIFT", "FMASK", "TMASK"), help="the same, for the noisy recogniser")
    args = parser.parse_args()
    args.train_seed = args.seed if args.train_seed is None else args.train_seed
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), seed {args.seed} "
          f"(training {args.train_seed}), {args.epochs} epochs (noisy {args.noisy_epochs}), "
          f"cosine {args.cosine}, "
          f"dropout {args.dropout} (noisy {args.noisy_dropout}), "
          f"augment {tuple(args.augment)} (noisy {tuple(args.noisy_augment)}), "
          f"cmvn {args.cmvn}, tilt {args.tilt}, patience {args.patience}, "
          f"extra training strings {args.extra_train}")

    if args.validation_only:
        validation_report(args)
        return
    start = time.perf_counter()
    v, g = ctc_agreement()
    print(f"\nCTC loss vs F.ctc_loss, 60 random cases x 2 reductions: max relative difference "
          f"value {v:.1e}, gradient {g:.1e} (target <= 1e-4)  [{time.perf_counter() - start:.1f} s]")

    clean = load_digit_strings(seed=args.seed, extra_train=args.extra_train)
    if args.clean_only:
        model, seconds = train(clean, args.epochs, args.train_seed, args.dropout, tuple(args.augment),
                               args.cmvn, args.cosine, args.tilt, args.patience)
        print(f"\nclean: trained in {seconds:.0f} s")
        print("  digit error rate, clean test (held-out voices):",
              ", ".join(f"{k} {x:.2%}" for k, x in der_of(model, clean.test).items()), "(target <= 5 %)")
        return
    noisy = load_digit_strings(seed=args.seed, snr_db=NOISY_SNR_DB, extra_train=args.extra_train)
    print(f"data: {len(clean.train)} / {len(clean.val)} / {len(clean.test)} strings, "
          f"voices {clean.info['voices']}")

    model, seconds = train(clean, args.epochs, args.train_seed, args.dropout, tuple(args.augment), args.cmvn,
                           args.cosine, args.tilt, args.patience)
    print(f"\nclean: trained in {seconds:.0f} s")
    clean_der = der_of(model, clean.test)
    print("  digit error rate, clean test (held-out voices):",
          ", ".join(f"{k} {x:.2%}" for k, x in clean_der.items()), "(target <= 5 %)")
    print("  clean model on noisy test (-6 dB):",
          ", ".join(f"{k} {x:.2%}" for k, x in der_of(model, noisy.test).items()))

    alignment_report(model, clean, "clean")

    # noisy ------------------------------------------------------------------------------------
    model_noisy, seconds = train(noisy, args.noisy_epochs, args.train_seed, args.noisy_dropout,
                                 tuple(args.noisy_augment), args.cmvn, args.cosine)
    print(f"\nnoisy (-6 dB): trained in {seconds:.0f} s")
    print("  digit error rate, noisy test:",
          ", ".join(f"{k} {x:.2%}" for k, x in der_of(model_noisy, noisy.test).items()))
    alignment_report(model_noisy, noisy, "noisy (-6 dB)")

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
