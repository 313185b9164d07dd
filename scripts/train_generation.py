"""Train the checkpoints chapter 14 (generation across modalities) loads, and write them with
their SHA-256 to ``mmcourse/checkpoints/`` (``mmcourse.pretrained.save``).

    MMCOURSE_PROFILE=full python scripts/train_generation.py [STAGE ...]

Stages (all by default), each a ``NAME.pt`` + ``NAME.sha256``:

* ``gen_clip``   -- chapter 07's dual encoder on the chapter's Shapes training split (the
  frozen image encoder of the prefix captioner, and the CLIP-score judge);
* ``gen_lm``     -- a tiny causal LM pretrained on the training split's captions, text only;
* ``gen_captioner08``   -- chapter 08's attention captioner, chapter 08's recipe (the comparison);
* ``shapes_judge``  -- the CNN attribute classifier, on a larger set of real scenes (not
  shipped: in the CPU budget it reads kinds poorly, about 0.3 colour+kind on real scenes;
  the chapter judges with ``CaptionerJudge(gen_captioner08)`` instead);
* ``gen_vq``     -- the VQ autoencoder (image tokenizer), on that larger set (not shipped: in
  the CPU budget its codebook lost the colours; the chapter uses the fixed ``PaletteTokenizer``);
* ``gen_t2i``    -- the autoregressive text-to-image model over ``PaletteTokenizer`` tokens.

The chapter's own splits (``load_shapes(seed=0, image_size=32)``, default sizes) train the
first three, so "unseen captions" mean the same for every captioner; the larger set
(``profile().shapes_train`` scenes from ``seed=1``, also 32 px: the notebook runs at 32 px)
trains the rest. Epochs scale with the profile's ``epoch_scale``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from mmcourse import pretrained
from mmcourse.config import profile, seed_everything
from mmcourse.data import load_shapes
from mmcourse.train import fit

IMAGE_SIZE = 32
PREFIX_K = (64, 4, 1)
STAGES = ("gen_clip", "gen_lm", "gen_captioner08", *(f"gen_prefix_k{k}" for k in PREFIX_K), "gen_vq",
          "gen_t2i", "shapes_judge")


def chapter_splits():
    return load_shapes(seed=0, image_size=IMAGE_SIZE, profile="default")


def large_splits(run):
    return load_shapes(n_train=run.shapes_train, n_val=1000, n_test=1000, seed=1,
                       image_size=IMAGE_SIZE, profile="default")


def train_clip(run):
    from mmcourse.models.retrieval import DualEncoder
    from mmcourse.reports import retrieval_report
    shapes = chapter_splits()
    config = {"vocab_size": len(shapes.info["vocab"]), "embed_dim": 64, "image_size": IMAGE_SIZE,
              "width": 16, "image_features": 64, "hidden": 64}
    torch.manual_seed(0)
    model = DualEncoder(**config)
    fit(model, shapes.train, shapes.val, epochs=run.epochs(8), batch_size=128, lr=2e-3, desc="clip")
    report = retrieval_report(model.eval(), shapes.test)
    print({k: round(v, 3) for k, v in report.items()})
    return model, config, {"test_t2i_R1": report["t2i_R@1"]}


def train_lm(run):
    from mmcourse.data.base import ModalDataset
    from mmcourse.models.language_model import TinyCausalDecoder
    from mmcourse.train import evaluate
    shapes = chapter_splits()
    config = {"vocab_size": len(shapes.info["vocab"]), "dim": 64, "heads": 4, "layers": 2, "max_len": 24}
    torch.manual_seed(0)
    model = TinyCausalDecoder(**config)
    text = {s: ModalDataset({"text": getattr(shapes, s).tensors["text"]}) for s in ("train", "val", "test")}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    epochs = run.epochs(15)
    fit(model, text["train"], text["val"], epochs=epochs, batch_size=64, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc="language model")
    loss = evaluate(model, text["test"])["loss"]
    print(f"LM test loss {loss:.3f} nats/token")
    return model, config, {"test_loss": loss}


def train_captioner08(run):
    from mmcourse.models.captioning import Captioner
    from mmcourse.reports import caption_report
    shapes = chapter_splits()
    vocab = shapes.info["vocab"]
    config = {"vocab_size": len(vocab), "vocab": list(vocab.itos)}
    torch.manual_seed(0)
    model = Captioner(len(vocab), vocab=vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    epochs = run.epochs(6)
    fit(model, shapes.train, shapes.val, epochs=epochs, batch_size=32, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc="captioner")
    report = caption_report(model.eval(), shapes.test)
    print(f"captioner08 test exact match {report['exact_match']:.3f}")
    return model, config, {"test_exact_match": report["exact_match"]}


def train_prefix(run, k: int):
    from mmcourse.models.prefix_captioning import PrefixCaptioner
    from mmcourse.reports import caption_report, exact_match_by_novelty
    shapes = chapter_splits()
    vocab = shapes.info["vocab"]
    lm, clip = pretrained.load("gen_lm"), pretrained.load("gen_clip")
    torch.manual_seed(0)
    model = PrefixCaptioner(lm, clip.image_encoder, k=k, vocab=vocab)
    opt = torch.optim.AdamW(model.mapper.parameters(), lr=1e-2)
    epochs = run.epochs(12)
    fit(model, shapes.train, shapes.val, epochs=epochs, batch_size=64, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc=f"prefix mapper k={k}")
    r = caption_report(model.eval(), shapes.test, return_captions=True)
    em = exact_match_by_novelty(r["captions"], shapes.test.meta["caption"], shapes.train.meta["caption"])
    print(f"prefix k={k}: test exact match {em}")
    # only the mapper is saved; ``pretrained.load_prefix_captioner`` rebuilds the captioner over the
    # frozen checkpoints named in the metadata
    return model.mapper, {"k": k, "depth": model.depth}, {
        "test_exact_match": em["all"], "unseen_exact_match": em["unseen"],
        "language_model": "gen_lm", "image_encoder": "gen_clip"}


def train_judge(run):
    from mmcourse.judges import AttributeJudge, judge_accuracy, judge_dataset
    shapes = load_shapes(n_train=2 * run.shapes_train, n_val=1000, n_test=1000, seed=2,
                         image_size=IMAGE_SIZE, profile="default")
    config = {"image_size": IMAGE_SIZE, "width": 16, "features": 128}
    torch.manual_seed(0)
    model = AttributeJudge(**config)
    train, val = judge_dataset(shapes.train), judge_dataset(shapes.val)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    epochs = run.epochs(10)
    fit(model, train, val, epochs=epochs, batch_size=128, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc="judge")
    acc = judge_accuracy(model.eval(), shapes.test)
    print("judge on real test scenes", {k: round(v, 4) for k, v in acc.items()})
    return model, config, {"real_test": acc}


def train_vq(run):
    from mmcourse.data.base import ModalDataset
    from mmcourse.models.image_tokenizer import VQAutoencoder
    shapes = large_splits(run)
    config = {"image_size": IMAGE_SIZE, "codebook_size": 128, "code_dim": 16, "width": 32}
    torch.manual_seed(0)
    model = VQAutoencoder(**config)
    model.init_codebook(shapes.train.tensors["image"][:2000])
    train = ModalDataset({"image": shapes.train.tensors["image"]})
    val = ModalDataset({"image": shapes.val.tensors["image"]})
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    epochs = run.epochs(6)
    fit(model, train, val, epochs=epochs, batch_size=64, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc="VQ autoencoder")
    with torch.no_grad():
        images = shapes.test.tensors["image"][:500]
        mse = (model.eval().reconstruct(images) - images).pow(2).mean().item()
        used = model.encode(shapes.test.tensors["image"]).unique().numel()
    print(f"VQ test MSE {mse:.5f}, {used} codes used")
    return model, config, {"test_mse": mse, "codes_used": used}


def train_t2i(run):
    from mmcourse.models.image_tokenizer import PaletteTokenizer
    from mmcourse.models.text_to_image import TextToImage, token_dataset
    vq = PaletteTokenizer(IMAGE_SIZE)  # the fixed tokenizer (the VQ lost colours in the CPU budget)
    shapes = large_splits(run)
    config = {"vocab_size": len(shapes.info["vocab"]), "codebook_size": vq.codebook_size,
              "grid": vq.grid, "dim": 64, "heads": 4, "layers": 2, "text_len": shapes.info["max_len"]}
    torch.manual_seed(0)
    model = TextToImage(**config)
    train, val = token_dataset(vq, shapes.train), token_dataset(vq, shapes.val)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    epochs = run.epochs(6)
    fit(model, train, val, epochs=epochs, batch_size=64, optimizer=opt,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs), desc="text to image")
    return model, config, {}


TRAIN = {"gen_clip": train_clip, "gen_lm": train_lm, "gen_captioner08": train_captioner08,
         **{f"gen_prefix_k{k}": (lambda run, k=k: train_prefix(run, k)) for k in PREFIX_K},
         "shapes_judge": train_judge, "gen_vq": train_vq, "gen_t2i": train_t2i}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stages", nargs="*", default=list(STAGES), choices=STAGES)
    args = parser.parse_args(argv)
    run = profile()
    torch.set_num_threads(1)  # the machine is shared; one core per run
    for stage in args.stages:
        seed_everything(0)
        t = time.time()
        model, kwargs, meta = TRAIN[stage](run)
        meta.update(profile=run.name, seconds=round(time.time() - t, 1))
        file = pretrained.save(model, stage, kwargs, meta)
        print(f"{stage}: {file.stat().st_size / 1e6:.2f} MB in {time.time() - t:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
