"""Data quality and robustness: every figure of the chapter, over several seeds.

For each seed (data split / corruption / model init) it prints

* imbalance: AV-Digits audio+text, train at a 10:1 long tail, early fusion: macro-F1 and recall of
  the 3 rarest classes for plain CE, class-weighted CE, resampling and focal loss;
* missing modality: 1,500 complete training samples; accuracy with speech removed at test for
  early fusion, early fusion + modality dropout (p = 0.3), late fusion, and mean imputation;
  relative / effective robustness (vs late fusion) over drop probabilities 0..1;
* noise: speech SNR 30..-10 dB robustness curves, early vs noise-augmented early vs late;
* XOR synergy: late / early / tensor fusion test accuracy;
* modality competition: each modality alone, naive joint late fusion, joint + OGM-GE;
* corruption throughput: seconds to corrupt the 1,000-sample test split with each corruption.

    python benchmarks/bench_quality.py [--seeds 0 1 2] [--epochs 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from mmcourse import robustness as R
from mmcourse.config import seed_everything
from mmcourse.data import quality as q
from mmcourse.data.av_digits import DEFAULTS, load_av_digits
from mmcourse.data.synergy import load_competition, load_xor
from mmcourse.metrics import precision_recall_f1
from mmcourse.models.cnn import UnimodalClassifier
from mmcourse.models.encoders import VectorEncoder
from mmcourse.models.fusion import make_fusion
from mmcourse.train import classification_loss, evaluate, fit

MODS = ["audio", "text"]
KEYS = [*MODS, "label"]


def early(digits, seed):
    return make_fusion("early", digits, modalities=MODS, seed=seed)


def imbalance_figures(digits, seed, epochs) -> dict:
    train, test = digits.train.select(KEYS), digits.test.select(KEYS)
    lt = q.imbalance(train, 10, seed=seed)
    w = R.class_weights(lt.tensors["label"], 10)
    out = {}
    for name, data, loss in [("plain", lt, None), ("weighted", lt, R.weighted_cross_entropy(w)),
                             ("resample", R.resample(lt, seed=seed), None),
                             ("focal", lt, R.focal_loss(2.0))]:
        model = early(digits, seed)
        fit(model, data, epochs=epochs, lr=2e-3, loss_fn=loss, progress=False, seed=seed)
        res = evaluate(model, test, return_outputs=True)
        prf = precision_recall_f1(res["targets"], res["logits"].argmax(1), 10, average=None)
        out[name] = (float(prf.f1.mean()), float(prf.recall[7:].mean()), res["accuracy"])
    return out


def missing_and_noise_figures(digits, seed, epochs) -> dict:
    train, test = digits.train.select(KEYS).subset(slice(0, 1500)), digits.test.select(KEYS)
    models = {"early": early(digits, seed),
              "early+dropout": R.ModalityDropout(early(digits, seed), 0.3),
              "late": make_fusion("late", digits, modalities=MODS, seed=seed)}
    for model in models.values():
        fit(model, train, epochs=epochs, lr=2e-3, progress=False, seed=seed)
    no_audio = q.remove_modality(test, modality="audio")
    out = {f"clean/{n}": evaluate(m, test)["accuracy"] for n, m in models.items()}
    out.update({f"no-audio/{n}": evaluate(m, no_audio)["accuracy"] for n, m in models.items()})
    out["no-audio/early+mean-impute"] = evaluate(
        models["early"], R.impute(no_audio, "audio", "mean", reference=train))["accuracy"]
    drop = partial(q.drop_modality, modality="audio", seed=seed)
    curves = {n: R.robustness_curve(m, test, drop, [0.0, 0.25, 0.5, 0.75, 1.0], name=n)
              for n, m in models.items()}
    for n, c in curves.items():
        out[f"drop RR/{n}"] = c.relative_robustness()
        out[f"drop ER/{n}"] = c.effective_robustness(curves["late"])
    snr = partial(q.noise_at_snr, modality="audio", seed=seed)
    noisy = early(digits, seed)
    fit(noisy, R.augment(train, snr, [0, -5, -10], seed=seed), epochs=epochs, lr=2e-3,
        progress=False, seed=seed)
    levels = [30, 5, 0, -5, -10]
    ncurves = {n: R.robustness_curve(m, test, snr, levels, name=n)
               for n, m in [("late", models["late"]), ("early", models["early"]), ("early+augment", noisy)]}
    for n, c in ncurves.items():
        out[f"snr -10dB/{n}"] = c.accuracy[-1]
        out[f"snr RR/{n}"] = c.relative_robustness()
        out[f"snr ER/{n}"] = c.effective_robustness(ncurves["late"])
    mixed = q.shuffle_pairs(test, 0.3, modality="audio", seed=seed)
    late = models["late"].eval()
    with torch.no_grad():
        scores = late(mixed.tensors).extras["modality_scores"]
    u, v = (torch.softmax(scores[m], 1) for m in MODS)
    flagged = R.detect_mispaired(u, v, 0.15)
    bad = mixed.meta["mispaired"]
    out["mispair/late acc"] = evaluate(late, mixed)["accuracy"]
    out["mispair/precision@15%"] = ((flagged & bad).sum() / flagged.sum()).item()
    repaired = q.set_missing(mixed, flagged, modality="audio")
    out["mispair/late acc repaired"] = evaluate(late, repaired)["accuracy"]
    shift = partial(q.time_shift, modality="audio", random=True, seed=seed)
    sc = R.robustness_curve(models["early"], test, shift, [0, 4, 12])
    out["time shift 4/early"], out["time shift 12/early"] = sc.accuracy[1], sc.accuracy[2]
    return out


def xor_figures(seed) -> dict:
    splits = load_xor(seed=seed)
    out = {}
    for strategy in ("late", "early", "tensor"):
        model = make_fusion(strategy, splits, seed=seed)
        fit(model, splits.train, epochs=20, lr=3e-3, progress=False, seed=seed)
        out[strategy] = evaluate(model, splits.test)["accuracy"]
    return out


def competition_figures(seed) -> dict:
    splits = load_competition(seed=seed)
    out = {}

    def sgd(model):
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    for m in ("x1", "x2"):
        torch.manual_seed(seed)
        alone = UnimodalClassifier(VectorEncoder(splits.train.tensors[m].shape[1], 64), m, 10)
        fit(alone, splits.train, epochs=30, batch_size=32, optimizer=sgd(alone), progress=False, seed=seed)
        out[f"{m} alone"] = evaluate(alone, splits.test)["accuracy"]
    for name, hook in [("naive joint", None), ("joint+OGM-GE", R.OGMGE(1.0, seed=seed))]:
        model = make_fusion("late", splits, seed=seed)
        fit(model, splits.train, epochs=30, batch_size=32, optimizer=sgd(model),
            loss_fn=classification_loss(), after_backward=hook, progress=False, seed=seed)
        out[name] = evaluate(model, splits.test, loss_fn=classification_loss())["accuracy"]
    return out


def corruption_timings(digits, vocab_size) -> dict:
    test = digits.test
    corruptions = {
        "imbalance 10:1": partial(q.imbalance, ratio=10),
        "drop_modality p=.5": partial(q.drop_modality, p=0.5, modality="audio"),
        "gaussian_noise": partial(q.gaussian_noise, std=1.0),
        "salt_and_pepper": partial(q.salt_and_pepper, fraction=0.1),
        "occlusion 12": partial(q.occlusion, size=12),
        "noise_at_snr 0dB": partial(q.noise_at_snr, snr_db=0.0),
        "token_dropout": partial(q.token_dropout, p=0.3),
        "token_substitution": partial(q.token_substitution, p=0.3, vocab_size=vocab_size),
        "label_noise": partial(q.label_noise, p=0.2),
        "shuffle_pairs": partial(q.shuffle_pairs, fraction=0.3, modality="audio"),
        "time_shift": partial(q.time_shift, shift=4, random=True),
        "resize 14": partial(q.resize, size=14),
    }
    out = {}
    for name, c in corruptions.items():
        start = time.perf_counter()
        for _ in range(5):
            c(test)
        out[name] = (time.perf_counter() - start) / 5
    return out


def show(title: str, rows: dict[int, dict]) -> None:
    print(f"\n== {title}")
    keys = list(next(iter(rows.values())))
    for k in keys:
        vals = [rows[s][k] for s in rows]
        if isinstance(vals[0], tuple):
            cells = "  ".join("(" + ", ".join(f"{x:.3f}" for x in v) + ")" for v in vals)
            print(f"  {k:28s} {cells}")
        else:
            cells = "  ".join(f"{v:7.3f}" for v in vals)
            print(f"  {k:28s} {cells}   median {statistics.median(vals):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"settings: seeds {args.seeds}, AV-Digits knobs {DEFAULTS}, modalities {MODS}, "
          f"early/late fusion (dim 64), AdamW lr 2e-3, batch 64, {args.epochs} epochs, "
          f"{args.threads} thread(s); XOR: 2000 train, sigma 0.3, 20 epochs lr 3e-3; competition: "
          "SGD lr 0.05 momentum 0.9, batch 32, 30 epochs, OGM-GE alpha 1.0")
    print("columns = seeds; imbalance tuples = (macro-F1, recall of 3 rarest, accuracy)")
    imb, mis, xor, comp = {}, {}, {}, {}
    start = time.perf_counter()
    for seed in args.seeds:
        seed_everything(seed)
        digits = load_av_digits(seed=seed)
        imb[seed] = imbalance_figures(digits, seed, args.epochs)
        mis[seed] = missing_and_noise_figures(digits, seed, args.epochs)
        xor[seed] = xor_figures(seed)
        comp[seed] = competition_figures(seed)
        print(f"seed {seed} done after {time.perf_counter() - start:.0f} s", flush=True)
    show("imbalance 10:1 (macro-F1, rarest-3 recall, accuracy)", imb)
    show("missing speech, noise, misalignment (accuracy unless named)", mis)
    show("XOR synergy test accuracy", xor)
    show("modality competition test accuracy", comp)
    digits = load_av_digits(seed=0)
    timings = corruption_timings(digits, len(digits.info["vocab"]))
    print("\n== seconds to corrupt the 1,000-sample AV-Digits test split (mean of 5)")
    for name, t in timings.items():
        print(f"  {name:28s} {t * 1000:8.2f} ms")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
