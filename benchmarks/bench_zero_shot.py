"""Chapter 11's figures: zero-shot accuracy on held-out combinations, the label-efficiency curve
and audio-visual zero-shot, printed with the time each part took.

    python benchmarks/bench_zero_shot.py [--seeds 0 1 2] [--av-epochs 6] [--only zero_shot transfer av]

1. **Zero-shot** with the shipped ``shapes_clip`` checkpoint (``mmcourse.pretrained``): colour and
   kind of one-object scenes, seen vs held-out (colour, kind) combinations, for three prompt sets.
2. **Label efficiency** on counting (1-3 objects, never a pretraining target): linear probe on the
   frozen pretrained image tower, fine-tuning it, and the same network from scratch, at 1, 5, 10
   and 100 labels per class, mean and 95 % t-interval over the seeds.
3. **Audio-visual**: contrastive image<->speech pretraining on clean AV-Digits without labels,
   zero-shot image accuracy by spoken prototypes (one training voice's clips per digit, and all
   training clips), against a supervised image classifier trained as long.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from mmcourse import config, pretrained

PARTS = ("zero_shot", "transfer", "av")


def zero_shot_part() -> dict:
    from mmcourse.data.shapes.holdout import load_single_objects
    from mmcourse.zero_shot import template_table

    meta = pretrained.metadata("shapes_clip")
    print(f"shapes_clip: trained by scripts/train_pretrained.py, profile {meta['profile']}, "
          f"{meta['n_train']} scenes x {meta['epochs']} epochs, held out {meta['held_out']}")
    model = pretrained.load("shapes_clip")
    objects = load_single_objects(2000, seed=7)
    rows = template_table(model, objects)
    print(f"{'attribute':<9} {'prompts':<28} {'seen':>6} {'unseen':>7} {'gap':>6}")
    for r in rows:
        print(f"{r['attribute']:<9} {r['prompts']:<28} {r['seen']:6.3f} {r['unseen']:7.3f} {r['gap']:+6.3f}")
    return {(r["attribute"], r["prompts"]): r for r in rows}


def transfer_part(seeds) -> list[dict]:
    from mmcourse.data.shapes.holdout import load_counting
    from mmcourse.label_efficiency import run_label_efficiency, summarise
    from mmcourse.models.retrieval import DualEncoder

    model = pretrained.load("shapes_clip")
    kwargs = pretrained.metadata("shapes_clip")["kwargs"]
    pool, test = load_counting(100, seed=0), load_counting(200, seed=1, name="test")
    records = run_label_efficiency(model.image_encoder, lambda: DualEncoder(**kwargs).image_encoder,
                                   pool, test, ks=(1, 5, 10, 100), seeds=seeds)
    rows = summarise(records)
    print(f"counting 1-3 shapes: pool {len(pool)}, test {len(test)}, seeds {list(seeds)}")
    print(f"{'method':<9} {'k':>4} {'mean':>6}   95% interval")
    for r in rows:
        print(f"{r['method']:<9} {r['k']:>4} {r['mean']:6.3f}   [{r['low']:.3f}, {r['high']:.3f}]")
    mean = {(r["method"], r["k"]): r["mean"] for r in rows}
    print(f"probe - scratch at k=5: {mean[('probe', 5)] - mean[('scratch', 5)]:+.3f} (target >= +0.20)")
    return rows


def av_part(epochs: int) -> dict:
    from mmcourse.data.av_digits import clean_av_digits
    from mmcourse.models.av_contrastive import AudioVisualEncoder
    from mmcourse.models.cnn import UnimodalClassifier, image_encoder
    from mmcourse.train import evaluate, fit
    from mmcourse.zero_shot import prototype_accuracy

    config.seed_everything(0)
    av = clean_av_digits(0)
    model = AudioVisualEncoder()
    fit(model, av.train.select(["image", "audio"]), epochs=epochs, batch_size=128, lr=2e-3,
        desc="AV contrastive")
    speakers = av.train.meta["speaker"]
    one_voice = [i for i, s in enumerate(speakers) if s == speakers[0]]
    test_x, test_y = av.test.tensors["image"], av.test.tensors["label"]
    clips, clip_y = av.train.tensors["audio"], av.train.tensors["label"]
    zs_voice = prototype_accuracy(model, test_x, test_y, clips[one_voice], clip_y[one_voice])
    zs_all = prototype_accuracy(model, test_x, test_y, clips, clip_y)
    with config.seeded(0):
        supervised = UnimodalClassifier(image_encoder(), "image")
    fit(supervised, av.train.select(["image", "label"]), epochs=epochs, desc="supervised image")
    sup = evaluate(supervised, av.test.select(["image", "label"]))["accuracy"]
    print(f"clean AV-Digits, {epochs} epochs each; test images {len(test_y)}")
    print(f"zero-shot by spoken prototypes, one voice ({len(one_voice)} clips): {zs_voice:.3f}")
    print(f"zero-shot by spoken prototypes, all {len(clip_y)} training clips:  {zs_all:.3f}")
    print(f"supervised image classifier (3,500 labelled images):       {sup:.3f}")
    return {"one_voice": zs_voice, "all_clips": zs_all, "supervised": sup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--av-epochs", type=int, default=6)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    args = parser.parse_args()
    print(f"profile {config.profile().name}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.machine()}; load average {os.getloadavg()[0]:.1f}")
    for part in PARTS:
        if part not in args.only:
            continue
        print(f"\n== {part} ==")
        start, cpu = time.perf_counter(), time.process_time()
        {"zero_shot": zero_shot_part, "transfer": lambda: transfer_part(args.seeds),
         "av": lambda: av_part(args.av_epochs)}[part]()
        print(f"[{part}: {time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU]")


if __name__ == "__main__":
    main()
