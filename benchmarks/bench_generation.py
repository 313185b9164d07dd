"""Chapter 14's figures: the prefix captioner against chapter 08's, and text to image judged.

    python benchmarks/bench_generation.py [--samples 4] [--pairs 200]

Prints, on the chapter's Shapes splits (``default`` profile, 32 px):

* chapter 08's captioner (shipped checkpoint ``gen_captioner08``) and prefix captioners over the
  frozen ``gen_lm`` and ``gen_captioner08``'s conv tower (``QueryMapper``s for k = 64, 4, 1, from
  the shipped checkpoints ``gen_prefix_k*``): trained parameters (and their share of chapter
  08's), exact match
  (all / seen / unseen captions), BLEU-4, CIDEr-D; target: unseen exact match within 5 points
  of chapter 08's with <= 20 % of its parameters;
* text to image (``gen_t2i``, a ``FactorisedTextToImage`` over ``gen_tokenizer``'s pattern
  tokens; the coarser ``PaletteTokenizer``'s ceiling beside it), judged by chapter 08's
  captioner reading each scene (``CaptionerJudge``): the judge's ceiling on real test scenes
  and on their token copies; every one-object caption (48) x ``samples`` at guidance w = 0
  (caption ignored), 1 (no guidance), 2 and 3, temperature 1, and at ``--tau`` (target: colour
  and kind right >= 90 %), and with guidance's plausibility constraint ``--alpha``, with colour
  alone and kind alone; ``pairs`` two-object test captions with a relation at w = 0, 1, 2, 3
  and with the constraint (colour/kind, relation); the mean CLIP score (real,
  generated, mismatched); diversity; seconds per image. Generation seed 0 (the recipe was
  chosen on seed 1 and validation captions: ``scripts/train_generation.py t2i_check``).
"""

from __future__ import annotations

import argparse
import time

import torch

from mmcourse import pretrained
from mmcourse.config import seed_everything
from mmcourse.data import load_shapes
from mmcourse.judges import (
    CaptionerJudge,
    all_single_object_captions,
    clip_score,
    generation_report,
    judge_accuracy,
)
from mmcourse.models import count_parameters
from mmcourse.models.image_tokenizer import PaletteTokenizer
from mmcourse.reports import caption_report, exact_match_by_novelty


def caption_row(name, model, shapes, base_params):
    t = time.time()
    r = caption_report(model.eval(), shapes.test, return_captions=True)
    em = exact_match_by_novelty(r["captions"], shapes.test.meta["caption"], shapes.train.meta["caption"])
    p = count_parameters(model)
    print(f"{name:24}{p:>9,}{p / base_params:>8.1%}{em['all']:>7.3f}{em['seen']:>7.3f}{em['unseen']:>8.3f}"
          f"{r['bleu4']:>8.3f}{r['cider_d']:>8.2f}{time.time() - t:>7.1f}s")
    return em


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=4, help="samples per one-object caption")
    parser.add_argument("--pairs", type=int, default=200, help="two-object test captions")
    parser.add_argument("--tau", type=float, default=0.7, help="the lower sampling temperature also shown")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="the plausibility threshold shown beside plain guidance (chosen on validation)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    args = parser.parse_args()
    seed_everything(0)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    shapes = load_shapes(seed=0, image_size=32, profile="default")
    vocab = shapes.info["vocab"]

    print("\n== prefix captioning vs chapter 08 (test split; seen/unseen = caption in the training split) ==")
    print(f"{'model':24}{'trained':>9}{'share':>8}{'exact':>7}{'seen':>7}{'unseen':>8}{'BLEU-4':>8}"
          f"{'CIDEr-D':>8}{'eval':>8}")
    cap08 = pretrained.load("gen_captioner08")
    base = count_parameters(cap08)
    ref = caption_row("chapter 08 captioner", cap08, shapes, base)
    for name in sorted(n for n in pretrained.available() if n.startswith("gen_prefix_")):
        model = pretrained.load_prefix_captioner(name)
        em = caption_row(f"prefix {name[len('gen_prefix_'):]}", model, shapes, base)
        if name == "gen_prefix_k64":
            gap = ref["unseen"] - em["unseen"]
            meta = pretrained.metadata(name)
            print(f"   (mapper {meta['kwargs'].get('mapper', 'pool')}, frozen {meta['image_encoder']} tower "
                  f"and {meta['language_model']}, {meta['epochs']} epochs at lr {meta['lr']})")
            print(f"   -> k=64: unseen exact match {em['unseen']:.3f} vs chapter 08's {ref['unseen']:.3f}: "
                  f"{gap * 100:.1f} points below it (target <= 5; negative: above it), "
                  f"{count_parameters(model) / base:.1%} of its parameters (target <= 20 %)")

    print("\n== text to image (judged by chapter 08's captioner reading each scene) ==")
    vq, t2i = pretrained.load("gen_tokenizer"), pretrained.load("gen_t2i")
    meta = pretrained.metadata("gen_t2i")
    print(f"generator: {meta['class'].rsplit('.', 1)[-1]} over {meta.get('tokenizer', 'palette')} tokens, "
          f"{count_parameters(t2i):,} parameters, trained on {meta.get('scenes', '?')} scenes x "
          f"{meta.get('epochs', '?')} epochs")
    judge = CaptionerJudge(pretrained.load("gen_captioner08"))
    clip = pretrained.load("gen_clip")
    real = judge_accuracy(judge, shapes.test)
    print("judge on real test scenes (the ceiling):", {k: round(v, 3) for k, v in real.items()})
    for name, tok in (("gen_tokenizer (gen_t2i's)", vq), ("PaletteTokenizer (coarser)", PaletteTokenizer())):
        copies = type(shapes.test)({"image": tok.reconstruct(shapes.test.tensors["image"])},
                                   meta={"caption": shapes.test.meta["caption"]})
        acc = judge_accuracy(judge, copies)
        print(f"judge on their {name} copies:", {k: round(v, 3) for k, v in acc.items()})
    real_clip = clip_score(clip, shapes.test.tensors["image"], shapes.test.tensors["text"]).mean().item()
    shuffled = clip_score(clip, shapes.test.tensors["image"],
                          shapes.test.tensors["text"].roll(1, 0)).mean().item()
    print(f"CLIP score: real pairs {real_clip:.3f}, mismatched pairs {shuffled:.3f}")

    singles = all_single_object_captions()
    two = [c for c in dict.fromkeys(shapes.test.meta["caption"]) if " of " in c or "above" in c][: args.pairs]
    print(f"\n{'captions':22}{'w':>5}{'τ':>5}{'α':>6}{'n':>5}{'col+kind':>9}{'colour':>7}{'kind':>6}{'size':>6}"
          f"{'relation':>9}{'caption':>8}{'CLIP':>7}{'distinct':>9}{'pix.dist':>9}{'s/img':>7}")
    a = args.alpha
    for label, caps, samples, settings in (
            ("one object", singles, args.samples,
             [(0.0, 1.0, 0), (1.0, 1.0, 0), (2.0, 1.0, 0), (3.0, 1.0, 0), (1.0, args.tau, 0),
              (1.0, 1.0, a), (2.0, 1.0, a), (3.0, 1.0, a)]),
            ("two objects + relation", two, 1,
             [(0.0, 1.0, 0), (1.0, 1.0, 0), (2.0, 1.0, 0), (3.0, 1.0, 0), (2.0, 1.0, a), (3.0, 1.0, a)])):
        for w, tau, alpha in settings:
            t = time.time()
            r = generation_report(t2i, vq, judge, caps, vocab, samples=samples, guidance=w, temperature=tau,
                                  plausibility=alpha, seed=0, dual_encoder=clip)
            per = (time.time() - t) / r["n"]
            print(f"{label:22}{w:>5.1f}{tau:>5.1f}{alpha:>6.2f}{r['n']:>5}{r['colour_kind']:>9.3f}{r['colour']:>7.3f}"
                  f"{r['kind']:>6.3f}{r['size']:>6.3f}{r['relation']:>9.3f}{r['caption']:>8.3f}"
                  f"{r['clip_score']:>7.3f}{r.get('distinct', float('nan')):>9.2f}"
                  f"{r.get('pixel_distance', float('nan')):>9.3f}{per:>7.3f}", flush=True)

if __name__ == "__main__":
    main()
