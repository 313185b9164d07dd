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
