"""Autoencoders: learn a small code by reconstructing the input -- and, with several modalities,
reconstruct a missing one from the others.

**Autoencoder** (one modality ``x``, flattened to ``D`` numbers): an encoder ``f`` squeezes ``x``
through a *bottleneck* of ``d < D`` numbers and a decoder ``g`` rebuilds it,

    z = f(x) ∈ R^d,    x̂ = g(z),    L = (1/N) Σ_i (1/D) ||x_i − x̂_i||²   (mean squared error).

With ``linear=True`` both maps are linear and the best they can do is PCA: the optimum spans the
top-``d`` principal subspace (Baldi & Hornik, 1989), which the tests check against scikit-learn.

**MultimodalAutoencoder** (modalities ``x_1 .. x_M``): one encoder per modality into a shared
code, averaged over the modalities present (``p_m ∈ {0, 1}``), one decoder per modality,

    z = Σ_m p_m f_m(x_m) / Σ_m p_m,    x̂_m = g_m(z),    L = Σ_m L_m(x_m, x̂_m),

with ``L_m`` the mean squared error for float modalities (images, spectrograms) and, for token ids
(a text hint), the binary cross-entropy of ``g_m(z)`` against the *bag of words* (which words of
the vocabulary occur). Trained with **modality dropout** -- each modality's *input* is hidden with
probability ``p_drop`` (at least one kept) while every *target* stays -- the code learns to stand
for the missing modality, so ``g_speech(f_text(x_text))`` reconstructs speech features from the
hint alone. ``fill_missing`` writes such reconstructions where a modality is absent.

Both follow the course's model contract: ``model(batch)`` returns a ``ModelOutput`` whose ``loss``
is ``L`` (``logits`` is ``None``: nothing to classify), with the code and the reconstructions in
``extras``; ``fit()`` trains them like any other model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.config import seeded
from mmcourse.data.base import ModalDataset
from mmcourse.models.output import ModelOutput

MASK_SUFFIX = "_mask"


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _float_input(x, name: str, shape: tuple) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(f"{name}: expected a float tensor of shape (batch, *{shape}), "
                        f"got {getattr(x, 'dtype', type(x).__name__)}")
    if tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{name}: expected shape (batch, *{tuple(shape)}), got {tuple(x.shape)}")
    return x


class Autoencoder(nn.Module):
    """``z = f(x)`` (``code_dim`` numbers), ``x̂ = g(z)``, loss ``(1/ND) Σ ||x − x̂||²``.

    ``shape``: one sample's shape, e.g. ``(1, 32, 32)``; ``modality``: the batch key it reads;
    ``hidden``: the width of the one hidden layer of ``f`` and ``g`` (ignored when ``linear``).
    """

    def __init__(self, shape: Sequence[int], code_dim: int = 16, *, modality: str = "audio",
                 hidden: int = 256, linear: bool = False):
        super().__init__()
        if code_dim < 1:
            raise ValueError(f"code_dim must be >= 1, got {code_dim}")
        self.shape, self.modality, self.code_dim = tuple(shape), modality, code_dim
        dim = int(torch.tensor(self.shape).prod())
        self.encoder = _mlp([dim, code_dim] if linear else [dim, hidden, code_dim])
        self.decoder = _mlp([code_dim, dim] if linear else [code_dim, hidden, dim])

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(_float_input(x, "Autoencoder", self.shape).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, *self.shape)

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        if self.modality not in batch:
            raise KeyError(f"Autoencoder reads batch[{self.modality!r}]; the batch has {list(batch)}")
        x = batch[self.modality]
        z = self.encode(x)
        x_hat = self.decode(z)
        return ModelOutput(loss=F.mse_loss(x_hat, x), extras={"code": z, "reconstruction": x_hat})


class MultimodalAutoencoder(nn.Module):
    """A shared code ``z = Σ_m p_m f_m(x_m) / Σ_m p_m`` and a decoder ``g_m`` per modality.

    ``example``: ``{modality: a batch of it}`` (float ``(B, ...)`` or token ids ``(B, L)``);
    ``vocab_sizes``: ``{modality: V}`` for token-id modalities (id 0 is padding); ``p_drop``: the
    probability that training hides a modality's input (at least one kept per sample).
    """

    def __init__(self, example: Mapping[str, Tensor], code_dim: int = 32, *,
                 vocab_sizes: Mapping[str, int] | None = None, hidden: int = 256, p_drop: float = 0.5,
                 seed: int = 0):
        super().__init__()
        if not example:
            raise ValueError("MultimodalAutoencoder needs at least one modality in example")
        if not 0.0 <= p_drop < 1.0:
            raise ValueError(f"p_drop must be in [0, 1), got {p_drop}")
        self.modalities, self.code_dim, self.p_drop = tuple(example), code_dim, float(p_drop)
        self.kinds, self.shapes, self.vocab = {}, {}, {}
        with seeded(seed):
            self.encoders, self.decoders = nn.ModuleDict(), nn.ModuleDict()
            for m, x in example.items():
                if x.is_floating_point():
                    self.kinds[m], self.shapes[m] = "float", tuple(x.shape[1:])
                    dim = int(torch.tensor(self.shapes[m]).prod())
                elif x.dtype == torch.long and x.dim() == 2:
                    if not vocab_sizes or m not in vocab_sizes:
                        raise ValueError(f"token-id modality {m!r} needs vocab_sizes[{m!r}]")
                    self.kinds[m], self.shapes[m], dim = "tokens", tuple(x.shape[1:]), vocab_sizes[m]
                    self.vocab[m] = dim
                else:
                    raise ValueError(f"modality {m!r}: expected float (B, ...) or int64 token ids (B, L), "
                                     f"got {tuple(x.shape)} {x.dtype}")
                self.encoders[m] = _mlp([dim, hidden, code_dim])
                self.decoders[m] = _mlp([code_dim, hidden, dim])

    # -- inputs ------------------------------------------------------------------------------
    def _flat(self, m: str, x: Tensor) -> Tensor:
        """A modality as the vector its encoder reads (and its decoder rebuilds)."""
        if self.kinds[m] == "float":
            return _float_input(x, f"MultimodalAutoencoder[{m!r}]", self.shapes[m]).flatten(1)
        if x.dtype != torch.long or x.dim() != 2:
            raise TypeError(f"MultimodalAutoencoder[{m!r}]: expected int64 token ids (batch, L), "
                            f"got {tuple(x.shape)} {x.dtype}")
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab[m]):
            raise ValueError(f"MultimodalAutoencoder[{m!r}]: token ids must lie in [0, {self.vocab[m]})")
        bag = torch.zeros(len(x), self.vocab[m], device=x.device).scatter_(1, x, 1.0)
        bag[:, 0] = 0.0                                                   # padding is no word
        return bag

    def _present(self, batch: Mapping[str, Tensor | None], size: int, device) -> Tensor:
        cols = []
        for m in self.modalities:
            if batch.get(m) is None:
                cols.append(torch.zeros(size, dtype=torch.bool, device=device))
            else:
                mask = batch.get(m + MASK_SUFFIX)
                cols.append(torch.ones(size, dtype=torch.bool, device=device) if mask is None
                            else mask.to(device).bool())
        return torch.stack(cols, 1)                                       # (B, M)

    # -- the model -----------------------------------------------------------------------------
    def encode(self, batch: Mapping[str, Tensor | None]) -> tuple[Tensor, Tensor]:
        """``(z, present)``: the shared code ``(B, code_dim)`` from the present modalities only."""
        missing = [m for m in self.modalities if m not in batch]
        if missing:
            raise KeyError(f"MultimodalAutoencoder expects modalities {list(self.modalities)}; the batch "
                           f"has {list(batch)} (pass None for a modality that is absent)")
        given = [batch[m] for m in self.modalities if batch[m] is not None]
        if not given:
            raise ValueError("MultimodalAutoencoder: every modality is None; nothing to encode")
        size, device = len(given[0]), given[0].device
        present = self._present(batch, size, device)
        total = torch.zeros(size, self.code_dim, device=device)
        for j, m in enumerate(self.modalities):
            if batch[m] is not None:
                total = total + present[:, j, None] * self.encoders[m](self._flat(m, batch[m]))
        z = total / present.sum(1, keepdim=True).clamp(min=1)
        return z, present

    def decode(self, z: Tensor, modality: str) -> Tensor:
        """``x̂_m = g_m(z)``: a float modality in its own shape; token ids as bag-of-words logits."""
        out = self.decoders[modality](z)
        return out.view(-1, *self.shapes[modality]) if self.kinds[modality] == "float" else out

    def _drop(self, batch: Mapping[str, Tensor | None], size: int, device) -> dict:
        """Hide each modality's input with probability ``p_drop`` (at least one kept)."""
        keep = torch.rand(size, len(self.modalities), device=device) >= self.p_drop
        none = ~keep.any(1)
        if none.any():
            pick = torch.randint(len(self.modalities), (size,), device=device)
            keep[none, pick[none]] = True
        batch = dict(batch)
        for j, m in enumerate(self.modalities):
            old = batch.get(m + MASK_SUFFIX)
            batch[m + MASK_SUFFIX] = keep[:, j] if old is None else keep[:, j] & old.bool()
        return batch

    def forward(self, batch: Mapping[str, Tensor | None]) -> ModelOutput:
        targets = {m: batch[m] for m in self.modalities if m in batch and batch[m] is not None}
        inputs = batch
        if self.training and self.p_drop > 0 and targets:
            x0 = next(iter(targets.values()))
            inputs = self._drop(batch, len(x0), x0.device)
        z, _ = self.encode(inputs)
        known = self._present(batch, len(z), z.device)                   # where a target exists
        loss, recon, losses = z.new_zeros(()), {}, {}
        for j, m in enumerate(self.modalities):
            recon[m] = self.decode(z, m)
            if m not in targets or not known[:, j].any():
                continue
            rows = known[:, j]
            if self.kinds[m] == "float":
                per = F.mse_loss(recon[m][rows], targets[m][rows])
            else:
                per = F.binary_cross_entropy_with_logits(recon[m][rows], self._flat(m, targets[m])[rows])
            losses[m] = per.detach()
            loss = loss + per
        return ModelOutput(loss=loss, extras={"code": z, "reconstruction": recon, "losses": losses})

    @torch.no_grad()
    def reconstruct(self, batch: Mapping[str, Tensor | None], modality: str) -> Tensor:
        """``g_m(z)`` for ``modality`` from whatever the batch holds (in evaluation mode)."""
        if modality not in self.modalities:
            raise KeyError(f"no decoder for {modality!r}; the model has {list(self.modalities)}")
        was = self.training
        self.eval()
        try:
            z, _ = self.encode(batch)
            return self.decode(z, modality)
        finally:
            self.train(was)


@torch.no_grad()
def fill_missing(model: MultimodalAutoencoder, data: ModalDataset, modality: str,
                 batch_size: int = 512) -> ModalDataset:
    """``data`` with ``modality`` reconstructed from the *other* modalities wherever it is absent
    (its mask is dropped, so a model reads the filled values as present)."""
    if model.kinds.get(modality) != "float":
        floats = [m for m, k in model.kinds.items() if k == "float"]
        raise ValueError(f"fill_missing reconstructs a float modality of the model, got {modality!r} "
                         f"(the model's float modalities: {floats})")
    if modality not in data:
        raise KeyError(f"fill_missing: no modality {modality!r} in split {data.name!r}; "
                       f"it has {list(data.keys)}")
    others = [m for m in model.modalities if m != modality]
    lacking = [m for m in others if m not in data]
    if lacking:
        raise KeyError(f"fill_missing: the data has no {lacking} to reconstruct {modality!r} from")
    x = data.tensors[modality]
    mask = data.tensors.get(modality + MASK_SUFFIX)
    present = torch.ones(len(x), dtype=torch.bool) if mask is None else mask.bool()
    device = next(model.parameters()).device
    guesses = []
    for start in range(0, len(x), batch_size):
        part = {m: data.tensors[m][start:start + batch_size].to(device) for m in others}
        for m in others:
            if m + MASK_SUFFIX in data.tensors:
                part[m + MASK_SUFFIX] = data.tensors[m + MASK_SUFFIX][start:start + batch_size].to(device)
        part[modality] = None
        guesses.append(model.reconstruct(part, modality).cpu())
    guess = torch.cat(guesses).to(x.dtype) if guesses else x.clone()
    view = (-1,) + (1,) * (x.dim() - 1)
    filled = torch.where(present.view(view), x, guess)
    tensors = {k: v for k, v in data.tensors.items() if k != modality + MASK_SUFFIX}
    tensors[modality] = filled
    return ModalDataset(tensors, name=data.name, meta=data.meta, shapes=data.shapes)


def reconstruction_error(x_hat: Tensor, x: Tensor) -> float:
    """Mean squared error ``(1/ND) Σ ||x − x̂||²`` (the autoencoder's loss), as a float."""
    if x_hat.shape != x.shape:
        raise ValueError(f"reconstruction and target differ in shape: {tuple(x_hat.shape)} "
                         f"vs {tuple(x.shape)}")
    return float(F.mse_loss(x_hat.detach().float(), x.detach().float()))
