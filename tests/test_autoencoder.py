"""Autoencoders: the linear one reaches PCA (scikit-learn), the multimodal one learns to rebuild a
missing modality from the others by a stated margin, and fill_missing fills only the gaps."""

import pytest
import torch
from sklearn.decomposition import PCA

from mmcourse.data.base import ModalDataset
from mmcourse.models.autoencoder import Autoencoder, MultimodalAutoencoder, fill_missing, reconstruction_error
from mmcourse.models.output import ModelOutput
from mmcourse.train import fit


def low_rank(n=300, dim=20, rank=4, noise=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(rank, dim, generator=g)
    x = torch.randn(n, rank, generator=g) @ basis + noise * torch.randn(n, dim, generator=g)
    return x


def paired(n=800, classes=5, dim_a=16, dim_b=12, noise=0.3, seed=0):
    """Two modalities that share only the class: a = P_a[y] + noise, b = P_b[y] + noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    pa, pb = torch.randn(classes, dim_a, generator=g), torch.randn(classes, dim_b, generator=g)
    a = pa[y] + noise * torch.randn(n, dim_a, generator=g)
    b = pb[y] + noise * torch.randn(n, dim_b, generator=g)
    return ModalDataset({"a": a, "b": b, "label": y}, name="train")


def test_linear_autoencoder_reaches_the_pca_reconstruction_error():
    x = low_rank()
    data = ModalDataset({"x": x}, name="train")
    torch.manual_seed(0)
    ae = Autoencoder((20,), code_dim=4, modality="x", linear=True)
    fit(ae, data, epochs=60, lr=1e-2, batch_size=100, progress=False)
    with torch.no_grad():
        ae_error = reconstruction_error(ae({"x": x}).extras["reconstruction"], x)
    pca = PCA(4).fit(x.numpy())
    pca_error = reconstruction_error(torch.from_numpy(pca.inverse_transform(pca.transform(x.numpy()))), x)
    mean_error = reconstruction_error(x.mean(0).expand_as(x), x)
    assert ae_error < 1.15 * pca_error + 1e-3          # the optimum of a linear AE is PCA's subspace
    assert ae_error < 0.05 * mean_error                 # and that is far better than no code at all


def test_autoencoder_follows_the_model_contract_and_checks_its_input():
    ae = Autoencoder((1, 4, 4), code_dim=3, modality="audio")
    out = ae({"audio": torch.randn(5, 1, 4, 4)})
    assert isinstance(out, ModelOutput) and out.logits is None and out.loss.dim() == 0
    assert out.extras["code"].shape == (5, 3) and out.extras["reconstruction"].shape == (5, 1, 4, 4)
    with pytest.raises(ValueError, match=r"expected shape \(batch, \*\(1, 4, 4\)\)"):
        ae({"audio": torch.randn(5, 16)})
    with pytest.raises(KeyError, match="audio"):
        ae({"image": torch.randn(5, 1, 4, 4)})
    with pytest.raises(TypeError, match="float"):
        ae({"audio": torch.zeros(5, 1, 4, 4, dtype=torch.long)})
    with pytest.raises(ValueError, match="code_dim"):
        Autoencoder((4,), code_dim=0)


@pytest.mark.slow
def test_multimodal_autoencoder_rebuilds_a_missing_modality_from_the_other():
    both = paired(n=1200, seed=0)
    train, test = both.subset(slice(0, 800)), both.subset(slice(800, 1200))
    mae = MultimodalAutoencoder({"a": train.tensors["a"][:2], "b": train.tensors["b"][:2]}, code_dim=8,
                                hidden=64, p_drop=0.5, seed=0)
    fit(mae, train, epochs=40, lr=5e-3, batch_size=100, progress=False)
    a, b = test.tensors["a"], test.tensors["b"]
    guess = mae.reconstruct({"a": None, "b": b}, "a")
    mean_error = reconstruction_error(train.tensors["a"].mean(0).expand_as(a), a)
    assert reconstruction_error(guess, a) < 0.3 * mean_error   # learned from b alone, 70 % of the error gone


def test_multimodal_autoencoder_learns_fast_on_an_easy_pair():
    train = paired(n=400, noise=0.1, seed=1)
    mae = MultimodalAutoencoder({"a": train.tensors["a"][:2], "b": train.tensors["b"][:2]}, code_dim=8,
                                hidden=32, p_drop=0.5, seed=0)
    a, b = train.tensors["a"], train.tensors["b"]
    before = reconstruction_error(mae.reconstruct({"a": None, "b": b}, "a"), a)
    fit(mae, train, epochs=15, lr=1e-2, batch_size=100, progress=False)
    after = reconstruction_error(mae.reconstruct({"a": None, "b": b}, "a"), a)
    assert after < 0.5 * before


def test_fill_missing_fills_only_the_absent_samples_and_drops_the_mask():
    data = paired(n=10)
    mask = torch.tensor([True, False] * 5)
    gappy = ModalDataset({**data.tensors, "a_mask": mask}, name="test")
    mae = MultimodalAutoencoder({"a": data.tensors["a"][:2], "b": data.tensors["b"][:2]}, code_dim=4, seed=0)
    filled = fill_missing(mae, gappy, "a")
    assert "a_mask" not in filled.tensors
    assert torch.equal(filled.tensors["a"][mask], data.tensors["a"][mask])
    expected = mae.reconstruct({"a": None, "b": data.tensors["b"][~mask]}, "a")
    assert torch.allclose(filled.tensors["a"][~mask], expected, atol=1e-6)
    with pytest.raises(KeyError, match=r"no \['b'\] to reconstruct 'a' from"):
        fill_missing(mae, ModalDataset({"a": data.tensors["a"]}), "a")
    with pytest.raises(ValueError, match="float modality"):
        fill_missing(mae, gappy, "label")


def test_multimodal_autoencoder_reads_token_ids_as_a_bag_of_words():
    tokens = torch.tensor([[3, 1, 0], [2, 2, 4]])
    mae = MultimodalAutoencoder({"audio": torch.randn(2, 6), "text": tokens}, code_dim=4,
                                vocab_sizes={"text": 5}, seed=0)
    out = mae({"audio": torch.randn(2, 6), "text": tokens})
    assert out.logits is None and out.loss.dim() == 0
    assert out.extras["reconstruction"]["text"].shape == (2, 5)
    assert torch.equal(mae._flat("text", tokens), torch.tensor([[0., 1, 0, 1, 0], [0, 0, 1, 0, 1]]))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 5\)"):
        mae({"audio": torch.randn(2, 6), "text": torch.tensor([[7, 0, 0], [1, 0, 0]])})
    with pytest.raises(ValueError, match="vocab_sizes"):
        MultimodalAutoencoder({"text": tokens})
    with pytest.raises(KeyError, match="pass None"):
        mae({"audio": torch.randn(2, 6)})


def test_modality_dropout_hides_inputs_in_training_only():
    data = paired(n=64)
    mae = MultimodalAutoencoder({"a": data.tensors["a"][:2], "b": data.tensors["b"][:2]}, code_dim=4,
                                p_drop=0.9, seed=0)
    batch = {k: data.tensors[k] for k in ("a", "b")}
    mae.eval()
    z_eval = mae(batch).extras["code"]
    assert torch.equal(z_eval, mae(batch).extras["code"])          # deterministic in evaluation
    mae.train()
    torch.manual_seed(0)
    z_train = mae(batch).extras["code"]
    assert not torch.allclose(z_train, z_eval)                      # inputs were hidden
