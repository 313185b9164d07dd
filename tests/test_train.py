import math

import pytest
import torch
from torch import nn

from mmcourse.data.base import ModalDataset
from mmcourse.models import ConvEncoder, DualEncoder, ModelOutput, UnimodalClassifier
from mmcourse.train import History, evaluate, fit, iterate_batches, load_checkpoint, save_checkpoint


class Linear(nn.Module):
    """A dict-in linear classifier over the modality 'x'."""

    modalities = ("x",)

    def __init__(self, d=2, c=2):
        super().__init__()
        self.fc = nn.Linear(d, c)

    def forward(self, batch):
        return ModelOutput(logits=self.fc(batch["x"]))


def blobs(n=400, seed=0, name="train"):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + 3.0 * (2 * y[:, None] - 1)
    return ModalDataset({"x": x, "label": y}, name=name)


def test_fit_learns_and_history_is_complete():
    torch.manual_seed(0)
    model = Linear()
    hist = fit(model, blobs(), blobs(200, seed=1, name="val"), epochs=5, lr=0.05, progress=False)
    assert len(hist) == 5
    assert hist["train_loss"][-1] < 0.5 * hist["train_loss"][0]
    assert hist.last["val_accuracy"] >= 0.95  # chance is 0.5
    assert set(hist.last) >= {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"}
    with pytest.raises(KeyError, match="history has no figure 'bleu'"):
        hist["bleu"]


def test_fit_is_deterministic_under_a_seed():
    def run():
        torch.manual_seed(0)
        model = Linear()
        fit(model, blobs(), epochs=2, lr=0.05, seed=3, progress=False)
        return model.fc.weight.detach().clone()

    assert torch.equal(run(), run())


@pytest.mark.slow
def test_small_cnn_reaches_93_percent_on_mnist5k(mnist_splits):
    """The foundation's bar: fit() trains a small CNN to >= 93 % on MNIST-5k test (chance 10 %)."""
    train, val, test = mnist_splits
    torch.manual_seed(0)
    model = UnimodalClassifier(ConvEncoder(1, (28, 28), width=16, out_dim=64), "image")
    hist = fit(model, train, val, epochs=6, lr=2e-3, progress=False)
    acc = evaluate(model, test)["accuracy"]
    print(f"MNIST-5k test accuracy {acc:.3f} after {len(hist)} epochs")
    assert acc >= 0.93


def test_early_stopping_restores_best_weights():
    torch.manual_seed(0)
    model = Linear()
    # a learning rate this large makes validation loss bounce, so patience triggers
    hist = fit(model, blobs(), blobs(200, seed=1, name="val"), epochs=40, lr=5.0,
               patience=2, progress=False)
    assert hist.stopped_early and len(hist) < 40
    best = hist.records[hist.best_epoch - 1]["val_loss"]
    assert best == min(hist["val_loss"])
    assert math.isclose(evaluate(model, blobs(200, seed=1, name="val"))["loss"], best,
                        rel_tol=1e-5)


def test_gradient_clipping_bounds_the_update():
    torch.manual_seed(0)
    model = Linear()
    before = model.fc.weight.detach().clone()
    big = ModalDataset({"x": 1e4 * torch.randn(64, 2), "label": torch.randint(0, 2, (64,))})
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    fit(model, big, epochs=1, batch_size=64, optimizer=opt, clip_grad_norm=0.5, progress=False)
    step = torch.cat([(model.fc.weight - before).flatten()])
    assert step.norm() <= 0.5 + 1e-5


def test_checkpoint_skips_training_and_rejects_other_models(tmp_path, capsys):
    path = tmp_path / "ckpt" / "linear.pt"
    torch.manual_seed(0)
    model = Linear()
    hist = fit(model, blobs(), epochs=2, lr=0.05, checkpoint=path, progress=False)
    assert path.exists()
    fresh = Linear()
    loaded = fit(fresh, blobs(), epochs=2, checkpoint=path)  # no training: loads
    assert "loaded trained weights" in capsys.readouterr().out
    assert torch.equal(fresh.fc.weight, model.fc.weight)
    assert loaded["train_loss"] == hist["train_loss"] and loaded.loaded_from == str(path)
    with pytest.raises(ValueError, match="parameters differ"):
        load_checkpoint(path, Linear(d=3))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt", Linear())
    save_checkpoint(path, model, history=History())
    assert len(load_checkpoint(path, Linear())) == 0


def test_resident_dataset_is_moved_once_and_sliced(monkeypatch):
    data = blobs(100)
    moves = []
    original = ModalDataset.to

    def counting_to(self, device, non_blocking=False):
        moves.append(device)
        return original(self, device, non_blocking)

    monkeypatch.setattr(ModalDataset, "to", counting_to)
    fit(Linear(), data, epochs=3, batch_size=10, progress=False)
    assert len(moves) == 1  # once for the whole run, not per batch or epoch


def test_iterate_batches_covers_every_sample_once():
    data = blobs(53)
    seen = torch.cat([b["x"] for b in iterate_batches(data, 10, shuffle=True,
                                                       generator=torch.Generator().manual_seed(0))])
    assert seen.shape == (53, 2)
    assert torch.equal(seen[seen[:, 0].argsort()], data.tensors["x"][data.tensors["x"][:, 0].argsort()])
    assert sum(1 for _ in iterate_batches(data, 10, drop_last=True)) == 5


def test_fit_accepts_a_dataloader_and_a_loss_fn():
    data = blobs(64)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True)
    torch.manual_seed(0)
    model = Linear()
    hist = fit(model, loader, epochs=3, lr=0.05, progress=False,
               loss_fn=lambda out, batch: nn.functional.cross_entropy(out.logits, batch["label"]))
    assert hist["train_loss"][-1] < hist["train_loss"][0]


def test_model_returning_its_own_loss_needs_no_loss_fn():
    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(2, 1)

        def forward(self, batch):
            return ModelOutput(loss=((self.w(batch["x"]).squeeze(1) - batch["x"].sum(1)) ** 2).mean())

    torch.manual_seed(0)
    hist = fit(Regressor(), blobs(), epochs=4, lr=0.05, progress=False)
    assert hist["train_loss"][-1] < 0.1 * hist["train_loss"][0]
    scores = evaluate(Regressor(), blobs())
    assert "accuracy" not in scores and scores["loss"] > 0


def test_bad_inputs_raise_clear_errors():
    model = Linear()
    with pytest.raises(KeyError, match=r"expects modalities \['x'\].*has \['y', 'label'\]"):
        fit(model, ModalDataset({"y": torch.zeros(4, 2), "label": torch.zeros(4).long()}),
            progress=False)
    with pytest.raises(ValueError, match="epochs must be an int >= 1"):
        fit(model, blobs(), epochs=0)
    with pytest.raises(ValueError, match="monitor must be"):
        fit(model, blobs(), monitor="bleu")
    with pytest.raises(ValueError, match="needs validation data"):
        fit(model, blobs(), monitor="val_loss", patience=2)
    with pytest.raises(ValueError, match="amp=True needs a CUDA device"):
        fit(model, blobs(), amp=True, device="cpu")
    with pytest.raises(ValueError, match="is empty"):
        fit(model, ModalDataset({"x": torch.zeros(0, 2), "label": torch.zeros(0).long()}))
    with pytest.raises(ValueError, match=r"ConvEncoder expects \(batch, 1, 28, 28\), got \(2, 1, 32, 32\)"):
        UnimodalClassifier(ConvEncoder(), "image")({"image": torch.zeros(2, 1, 32, 32)})
    with pytest.raises(KeyError, match="expects modality 'image'"):
        UnimodalClassifier(ConvEncoder(), "image")({"audio": torch.zeros(2, 1, 28, 28)})
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(Linear(), ModalDataset({"x": torch.full((8, 2), float("nan")),
                                    "label": torch.zeros(8).long()}), progress=False)


def test_history_plot_draws_curves():
    hist = fit(Linear(), blobs(), blobs(50, 1, "val"), epochs=2, progress=False)
    fig = hist.plot()
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert {"train loss", "val loss", "val accuracy"} <= set(labels)
    with pytest.raises(ValueError, match="nothing to plot"):
        History().plot()


def test_compile_routes_the_training_forward_through_torch_compile(monkeypatch, tmp_path):
    """compile=True trains through torch.compile(model) (stubbed here: compiling needs a C++
    toolchain and tens of seconds); the checkpoint holds the plain model's weights."""
    compiled_calls = []

    def fake_compile(model):
        def forward(batch):
            compiled_calls.append(len(batch["x"]))
            return model(batch)
        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    plain = Linear()
    fit(plain, blobs(64), epochs=2, batch_size=16, progress=False)
    torch.manual_seed(0)
    model = Linear()
    hist = fit(model, blobs(64), blobs(32, 1), epochs=2, batch_size=16, compile=True, progress=False,
               checkpoint=tmp_path / "c.pt")
    assert compiled_calls == [16] * 8  # every training step, no evaluation step
    assert torch.equal(model.fc.weight, plain.fc.weight)  # same maths as without compile
    assert "val_accuracy" in hist.last
    load_checkpoint(tmp_path / "c.pt", Linear())  # keys of the plain model, no '_orig_mod.'


def test_fit_trains_on_the_target_it_is_given_including_auxiliary_heads():
    """fit(target=...) reaches every term of the objective: the main logits and the auxiliary
    heads (late fusion's experts). Trained on 'parity', the model learns parity, not 'label'."""

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.main, self.aux = nn.Linear(2, 2), nn.Linear(2, 2)

        def forward(self, batch):
            x = batch["x"]
            return ModelOutput(logits=self.main(x), aux_logits={"aux": self.aux(x)})

    data = blobs()
    x = data.tensors["x"]
    parity = (x[:, 1] > 0).long()             # a target that is not 'label'
    data = ModalDataset({"x": x, "label": 1 - parity, "parity": parity})
    torch.manual_seed(0)
    model = TwoHeads()
    fit(model, data, epochs=8, lr=0.05, target="parity", progress=False)
    with torch.no_grad():
        assert (model.main(x).argmax(1) == parity).float().mean() >= 0.9
        assert (model.aux(x).argmax(1) == parity).float().mean() >= 0.9


def test_monitoring_a_figure_the_evaluation_lacks_is_an_error():
    """A dual encoder's evaluation has no accuracy: monitoring val_accuracy must fail loudly
    instead of silently maximising the training loss."""
    shapes = {"image": torch.rand(16, 3, 32, 32), "text": torch.randint(1, 6, (16, 5))}
    data = ModalDataset(shapes)
    with pytest.raises(ValueError, match=r"monitor='val_accuracy'.*gives \['val_loss'\]"):
        fit(DualEncoder(6, embed_dim=8, width=4, image_features=8, hidden=8), data, data,
            epochs=2, monitor="val_accuracy", patience=1, progress=False)


def test_best_epoch_is_the_lowest_validation_loss_by_default():
    hist = fit(Linear(), blobs(), blobs(200, seed=1, name="val"), epochs=6, lr=5.0, progress=False)
    assert hist.monitor == "val_loss"
    assert hist["val_loss"][hist.best_epoch - 1] == min(hist["val_loss"])
    no_val = fit(Linear(), blobs(), epochs=3, lr=0.05, progress=False)
    assert no_val.monitor == "train_loss"
    assert no_val["train_loss"][no_val.best_epoch - 1] == min(no_val["train_loss"])


def test_wrong_labels_and_outputs_get_clear_errors():
    data = blobs(16)
    x, y = data.tensors["x"], data.tensors["label"]
    with pytest.raises(ValueError, match=r"target 'label' must hold integer class ids.*float32"):
        fit(Linear(), ModalDataset({"x": x, "label": y.float()}), progress=False)
    with pytest.raises(ValueError, match=r"class ids from 0 to 12.*scores 2 classes"):
        fit(Linear(), ModalDataset({"x": x, "label": y * 12}), progress=False)
    with pytest.raises(ValueError, match=r"class ids from -1"):
        evaluate(Linear(), ModalDataset({"x": x, "label": y - 1}))
    with pytest.raises(KeyError, match=r"target 'digit'.*pass fit\(..., target=<key>\)"):
        fit(Linear(), data, target="digit", progress=False)

    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, batch):
            return self.fc(batch["x"])

    with pytest.raises(TypeError, match="Bare.forward.*returned a Tensor.*ModelOutput"):
        fit(Bare(), data, progress=False)
    with pytest.raises(ValueError, match=r"ConvEncoder expects a float tensor, got dtype torch.uint8"):
        UnimodalClassifier(ConvEncoder(), "image")({"image": torch.zeros(2, 1, 28, 28, dtype=torch.uint8)})


def test_a_loss_of_ones_own_may_train_on_other_targets():
    """The label checks guard the default cross-entropy only: a regression loss on float targets
    passed as loss_fn trains as it is."""
    data = blobs(64)
    x = data.tensors["x"]
    data = ModalDataset({"x": x, "label": x.sum(1)})              # float targets
    mse = lambda out, batch: ((out.logits[:, 0] - batch["label"]) ** 2).mean()  # noqa: E731
    torch.manual_seed(0)
    hist = fit(Linear(), data, epochs=10, lr=0.05, loss_fn=mse, progress=False)
    assert hist["train_loss"][-1] < 0.5 * hist["train_loss"][0]      # measured 25.0 -> 5.1
