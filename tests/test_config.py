import random

import numpy as np
import pytest
import torch

from mmcourse import config


def test_seed_everything_reproduces_python_numpy_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3).tolist()

    config.seed_everything(123)
    first = draw()
    config.seed_everything(123)
    assert draw() == first
    config.seed_everything(124)
    assert draw() != first


def test_seed_everything_makes_training_bit_identical():
    def train_once():
        config.seed_everything(7)
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.3),
                                    torch.nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
        for _ in range(5):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(train_once(), train_once())
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError), match="seed must be"):
        config.seed_everything(bad)


def test_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv(config.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_mps_available", lambda: True)
    assert config.device().type == "mps"
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    assert config.device().type == "cpu"


def test_device_honours_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(config.DEVICE_ENV, "cpu")
    assert config.device() == torch.device("cpu")
    assert config.device("cpu") == torch.device("cpu")


def test_device_override_errors_are_clear(monkeypatch):
    monkeypatch.setenv(config.DEVICE_ENV, "tpu-please")
    with pytest.raises(ValueError, match="expected 'cpu', 'cuda'"):
        config.device()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(config.DEVICE_ENV, "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        config.device()


def test_profile_default_full_and_unknown(monkeypatch):
    monkeypatch.delenv(config.PROFILE_ENV, raising=False)
    assert config.profile().name == "default"
    monkeypatch.setenv(config.PROFILE_ENV, "full")
    full = config.profile()
    assert full.name == "full"
    default = config.profile("default")
    assert full.shapes_train > default.shapes_train and full.epochs(10) > default.epochs(10)
    assert full.shapes_image_size > default.shapes_image_size and full.av_copies > default.av_copies
    assert (full.model_scale, full.captioner) == (2, "transformer")
    assert (default.av_copies, default.model_scale, default.captioner) == (1, 1, "gru")
    monkeypatch.setenv(config.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"unknown profile 'huge'.*\['default', 'full'\]"):
        config.profile()


def test_profile_overrides_are_checked():
    tiny = config.with_overrides(config.profile("default"), shapes_train=10)
    assert tiny.shapes_train == 10
    with pytest.raises(ValueError, match="unknown profile fields"):
        config.with_overrides(tiny, epochs_please=3)
    assert config.profile("default").epochs(0) == 1
    with pytest.raises(ValueError, match="captioner must be 'gru' or 'transformer'"):
        config.with_overrides(tiny, captioner="lstm")
    with pytest.raises(ValueError, match="av_copies must be a positive int"):
        config.with_overrides(tiny, av_copies=0)
