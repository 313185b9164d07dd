"""fit() on CUDA: AMP, device-resident data, checkpoints that move to the CPU.

Marked ``gpu``: skipped (with the reason) on machines without CUDA, such as CI.
"""

import math

import pytest
import torch

from mmcourse.data.base import ModalDataset
from mmcourse.models import ConvEncoder, UnimodalClassifier
from mmcourse.train import evaluate, fit, load_checkpoint, prepare

pytestmark = pytest.mark.gpu


def digits_like(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.5
    x[torch.arange(n), 0, y * 2 + 4, 4:24] += 2.0  # a class-specific stripe: easy to learn
    return ModalDataset({"image": x, "label": y}, name="stripes")


def test_fit_with_amp_on_cuda_learns_with_finite_losses():
    torch.manual_seed(0)
    model = UnimodalClassifier(ConvEncoder(), "image")
    hist = fit(model, digits_like(), digits_like(256, 1), epochs=3, device="cuda", progress=False)
    assert all(math.isfinite(v) for v in hist["train_loss"])
    assert hist.last["val_accuracy"] > 0.9
    assert next(model.parameters()).device.type == "cuda"


def test_small_datasets_become_device_resident():
    data = prepare(digits_like(64), torch.device("cuda"))
    assert data.device.type == "cuda"


def test_checkpoint_saved_on_gpu_loads_on_cpu(tmp_path):
    torch.manual_seed(0)
    model = UnimodalClassifier(ConvEncoder(), "image")
    fit(model, digits_like(), epochs=1, device="cuda", checkpoint=tmp_path / "m.pt", progress=False)
    cpu_model = UnimodalClassifier(ConvEncoder(), "image")
    load_checkpoint(tmp_path / "m.pt", cpu_model)
    on_gpu = evaluate(model, digits_like(128, 2), amp=False)["accuracy"]
    on_cpu = evaluate(cpu_model, digits_like(128, 2))["accuracy"]
    assert abs(on_gpu - on_cpu) <= 0.02


def _chapter_models():
    """name → (model factory, train split, batch size) for every chapter's model, on small data."""
    from mmcourse.data.av_digits import load_av_digits
    from mmcourse.data.shapes import load_shapes
    from mmcourse.models import Captioner, DualEncoder, Frames, SequenceEncoder, make_fusion
    from mmcourse.models.fusion import STRATEGIES

    av = load_av_digits(seed=0)
    shapes = load_shapes(512, 64, 64, seed=0)
    small = av.train.subset(range(512))
    vocab = len(av.info["vocab"])
    cases = {
        "cnn-image": (lambda: UnimodalClassifier(ConvEncoder(), "image"), small, 64),
        "gru-text": (lambda: UnimodalClassifier(SequenceEncoder(vocab, out_dim=64), "text"), small, 64),
        "gru-audio-frames": (
            lambda: UnimodalClassifier(Frames(SequenceEncoder(input_dim=32, out_dim=64)), "audio"),
            small, 64),
        "dual-encoder": (lambda: DualEncoder(len(shapes.info["vocab"])), shapes.train, 128),
        "captioner": (lambda: Captioner(len(shapes.info["vocab"])), shapes.train, 64),
    }
    for s in STRATEGIES:
        cases[f"fusion-{s}"] = ((lambda s=s: make_fusion(s, av, seed=0)), small, 64)
    return cases


CHAPTER_MODELS = ("cnn-image", "gru-text", "gru-audio-frames", "dual-encoder", "captioner",
                  "fusion-early", "fusion-late", "fusion-late-learned", "fusion-vote",
                  "fusion-cross-attention", "fusion-tensor", "fusion-gated")


@pytest.fixture(scope="module")
def chapter_models():
    return _chapter_models()


@pytest.mark.parametrize("name", CHAPTER_MODELS)
def test_each_chapter_model_trains_on_cuda_with_amp_and_moves_to_cpu(chapter_models, name, tmp_path):
    factory, train, batch_size = chapter_models[name]
    torch.manual_seed(0)
    model = factory()
    hist = fit(model, train, epochs=3, batch_size=batch_size, device="cuda", amp=True,
               checkpoint=tmp_path / "m.pt", progress=False)
    losses = hist["train_loss"]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0], losses
    gpu = evaluate(model, train, amp=False)
    cpu_model = factory()
    load_checkpoint(tmp_path / "m.pt", cpu_model)
    cpu = evaluate(cpu_model, train, device="cpu")
    assert next(cpu_model.parameters()).device.type == "cpu"
    assert cpu["loss"] == pytest.approx(gpu["loss"], rel=1e-3, abs=1e-3)


@pytest.mark.parametrize("name", ["cnn-image", "fusion-late", "dual-encoder"])
def test_fp32_cuda_training_stays_close_to_cpu_on_the_same_seed(chapter_models, name):
    factory, train, batch_size = chapter_models[name]
    results = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = factory()
        fit(model, train, epochs=2, batch_size=batch_size, device=dev, amp=False, seed=0,
            progress=False)
        results[dev] = evaluate(model, train, device=dev, amp=False)["loss"]
    assert results["cuda"] == pytest.approx(results["cpu"], rel=0.05), results
