"""Recurrent networks for sequences (text tokens, spectrogram frames), from scratch to library.

An **Elman RNN** reads a sequence ``x_1 .. x_T`` one step at a time, carrying a hidden state

    h_t = f(W x_t + U h_{t-1} + b),        h_0 = 0, f = tanh (or ReLU),

so ``h_T`` summarises the whole sequence. A **GRU** gates the update so that the state can be
carried over many steps unchanged (PyTorch's convention; σ the logistic sigmoid, ⊙ elementwise):

    r_t = σ(W_r x_t + b_r + U_r h_{t-1} + c_r)            reset gate
    z_t = σ(W_z x_t + b_z + U_z h_{t-1} + c_z)            update gate
    n_t = tanh(W_n x_t + b_n + r_t ⊙ (U_n h_{t-1} + c_n))  candidate state
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}.

Backpropagation through time multiplies one Jacobian per step,
``∂h_T/∂x_t = (∏_{s=t+1..T} ∂h_s/∂h_{s-1}) ∂h_t/∂x_t``; for the Elman cell each factor is
``diag(f'(·)) U``, which shrinks (or blows up) geometrically -- the vanishing-gradient problem
that ``gradient_through_time`` measures. In the GRU the factor contains ``diag(z_t)``, a direct
path that keeps the product from collapsing.

The page reads from scratch to library:

* ``ElmanCell`` and ``GRUCell`` -- one step, explicit parameters ``W, U, b_x, b_h``;
  ``run_cell`` unrolls a cell over ``(B, T, F)``; ``copy_from_torch`` loads a one-layer
  ``nn.RNN`` / ``nn.GRU`` into a cell so both can be compared;
* ``gradient_through_time`` -- ``||∂h_T/∂x_t||`` for ``t = 1..T``;
* ``SequenceEncoder`` -- PyTorch's fused ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` as a
  ``(B, L) tokens`` or ``(B, T, F) frames`` → ``(B, out_dim)`` feature extractor that handles
  padding correctly; ``Frames`` feeds it a ``(B, 1, n_mels, T)`` spectrogram.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmcourse.tensors import check_float, check_token_ids


# --------------------------------------------------------------------------------------------
# From scratch: one step of a recurrent cell
# --------------------------------------------------------------------------------------------
class _Cell(nn.Module):
    """Shared parts of the from-scratch cells: ``gates`` stacked blocks of parameters

    ``W: (gates·H, F)``, ``U: (gates·H, H)``, ``b_x, b_h: (gates·H,)``, laid out exactly like
    PyTorch's ``weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0`` (same initialisation,
    ``U(-1/sqrt(H), 1/sqrt(H))``), so ``copy_from_torch`` is one line per tensor.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size}, {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        g, bound = self.gates * hidden_size, 1 / math.sqrt(hidden_size)
        self.W = nn.Parameter(torch.empty(g, input_size).uniform_(-bound, bound))
        self.U = nn.Parameter(torch.empty(g, hidden_size).uniform_(-bound, bound))
        self.b_x = nn.Parameter(torch.empty(g).uniform_(-bound, bound))
        self.b_h = nn.Parameter(torch.empty(g).uniform_(-bound, bound))

    def _check(self, x: Tensor, h: Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"{type(self).__name__} expects one step x_t (batch, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        if h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"{type(self).__name__} expects a state h (batch={x.shape[0]}, {self.hidden_size}), "
                f"got {tuple(h.shape)}"
            )
        check_float(x, f"{type(self).__name__} (x_t)", like=self.W)
        check_float(h, f"{type(self).__name__} (h)", like=self.W)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class ElmanCell(_Cell):
    """One Elman step ``h_t = f(W x_t + b_x + U h_{t-1} + b_h)``, ``f`` = tanh or ReLU.

    The bias is ``b = b_x + b_h``: PyTorch's ``nn.RNN`` keeps the two halves (``bias_ih_l0``,
    ``bias_hh_l0``), and so does this cell, so that copying its weights is one line each.
    ``W: (H, F)``, ``U: (H, H)``. ``cell(x_t, h)`` maps ``(B, F), (B, H)`` → ``(B, H)``.
    """

    NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        if nonlinearity not in self.NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        self._check(x, h)
        f = self.NONLINEARITIES[self.nonlinearity]
        return f(x @ self.W.T + self.b_x + h @ self.U.T + self.b_h)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}"


class GRUCell(_Cell):
    """One GRU step, PyTorch's equations (``W = [W_r; W_z; W_n]`` stacked, likewise ``U``,
    ``b_x = [b_r; b_z; b_n]``, ``b_h = [c_r; c_z; c_n]``):

        r = σ(W_r x + b_r + U_r h + c_r)
        z = σ(W_z x + b_z + U_z h + c_z)
        n = tanh(W_n x + b_n + r ⊙ (U_n h + c_n))
        h' = (1 - z) ⊙ n + z ⊙ h

    ``z → 1`` copies the old state, ``z → 0`` replaces it by the candidate ``n``. Note the reset
    gate multiplies ``U_n h + c_n`` (bias included), as in ``nn.GRU``.
    ``cell(x_t, h)`` maps ``(B, F), (B, H)`` → ``(B, H)``.
    """

    gates = 3

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        self._check(x, h)
        xr, xz, xn = (x @ self.W.T + self.b_x).chunk(3, dim=-1)
        hr, hz, hn = (h @ self.U.T + self.b_h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


def run_cell(cell: nn.Module, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Unroll ``cell`` over a sequence: ``x (B, T, F)`` → ``(outputs (B, T, H), h_T (B, H))``.

    ``h_t = cell(x_t, h_{t-1})`` for ``t = 1..T`` from ``h_0`` (zeros unless given); ``outputs``
    stacks ``h_1 .. h_T``. Any module with ``hidden_size`` and a ``(x_t, h) → h`` forward works
    (``ElmanCell``, ``GRUCell``, ``nn.RNNCell``, ``nn.GRUCell``).
    """
    if x.dim() != 3:
        raise ValueError(f"run_cell expects a sequence (batch, steps, features), got {tuple(x.shape)}")
    hidden = cell.hidden_size
    if h0 is None:
        h = x.new_zeros(x.shape[0], hidden)
    elif h0.shape != (x.shape[0], hidden):
        raise ValueError(f"h0 must be (batch={x.shape[0]}, {hidden}), got {tuple(h0.shape)}")
    else:
        h = h0
    outputs = []
    for t in range(x.shape[1]):
        h = cell(x[:, t], h)
        outputs.append(h)
    if not outputs:
        return x.new_zeros(x.shape[0], 0, hidden), h
    return torch.stack(outputs, dim=1), h


_TORCH_MATCH = {ElmanCell: (nn.RNN, nn.RNNCell), GRUCell: (nn.GRU, nn.GRUCell)}


@torch.no_grad()
def copy_from_torch(cell: ElmanCell | GRUCell, torch_rnn: nn.Module) -> ElmanCell | GRUCell:
    """Copy the weights of a one-layer, unidirectional ``nn.RNN`` / ``nn.GRU`` (or
    ``nn.RNNCell`` / ``nn.GRUCell``) into ``cell``, in place; returns ``cell``.

    ``W ← weight_ih_l0``, ``U ← weight_hh_l0``, ``b_x ← bias_ih_l0``, ``b_h ← bias_hh_l0``.
    """
    kinds = _TORCH_MATCH.get(type(cell))
    if kinds is None:
        raise TypeError(f"copy_from_torch expects an ElmanCell or GRUCell, got {type(cell).__name__}")
    if not isinstance(torch_rnn, kinds):
        raise TypeError(
            f"a {type(cell).__name__} takes its weights from {' or '.join(k.__name__ for k in kinds)}, "
            f"got {type(torch_rnn).__name__}"
        )
    if isinstance(torch_rnn, nn.RNNBase):
        if torch_rnn.num_layers != 1 or torch_rnn.bidirectional or torch_rnn.proj_size:
            raise ValueError(
                f"copy_from_torch needs a one-layer unidirectional {type(torch_rnn).__name__}, got "
                f"num_layers={torch_rnn.num_layers}, bidirectional={torch_rnn.bidirectional}"
            )
        suffix = "_l0"
    else:
        suffix = ""
    if not torch_rnn.bias:
        raise ValueError(f"copy_from_torch needs {type(torch_rnn).__name__}(bias=True)")
    if (torch_rnn.input_size, torch_rnn.hidden_size) != (cell.input_size, cell.hidden_size):
        raise ValueError(
            f"size mismatch: {type(cell).__name__}({cell.input_size}, {cell.hidden_size}) vs "
            f"{type(torch_rnn).__name__}({torch_rnn.input_size}, {torch_rnn.hidden_size})"
        )
    if isinstance(cell, ElmanCell) and torch_rnn.nonlinearity != cell.nonlinearity:
        raise ValueError(
            f"nonlinearity mismatch: cell has {cell.nonlinearity!r}, "
            f"{type(torch_rnn).__name__} has {torch_rnn.nonlinearity!r}"
        )
    cell.W.copy_(getattr(torch_rnn, "weight_ih" + suffix))
    cell.U.copy_(getattr(torch_rnn, "weight_hh" + suffix))
    cell.b_x.copy_(getattr(torch_rnn, "bias_ih" + suffix))
    cell.b_h.copy_(getattr(torch_rnn, "bias_hh" + suffix))
    return cell


# --------------------------------------------------------------------------------------------
# Vanishing gradients
# --------------------------------------------------------------------------------------------
def _final_state(model: nn.Module, x: Tensor) -> Tensor:
    """``h_T (B, H)`` of a cell (unrolled with ``run_cell``) or a unidirectional ``nn.RNNBase``."""
    if isinstance(model, nn.RNNBase):
        if model.bidirectional:
            raise ValueError("gradient_through_time needs a unidirectional RNN")
        out, _ = model(x if model.batch_first else x.transpose(0, 1))
        return out[:, -1] if model.batch_first else out[-1]
    return run_cell(model, x)[1]


def gradient_through_time(model: nn.Module, T: int = 50, *, batch: int = 8, seed: int = 0,
                          inputs: Tensor | None = None) -> Tensor:
    """``||∂h_T / ∂x_t||_F`` for ``t = 1..T``: how much the final state still depends on step ``t``.

    ``model``: a cell (``ElmanCell``, ``GRUCell``, ``nn.RNNCell``, ...) or a one-directional
    ``nn.RNN`` / ``nn.GRU`` / ``nn.LSTM`` (its last layer's output at ``T`` is ``h_T``).
    The Frobenius norm of the ``(H, F)`` Jacobian is averaged over ``batch`` random sequences
    ``x ~ N(0, 1)`` (seeded), or over ``inputs (B, T, F)`` if given. Returns a float tensor
    ``(T,)``; entry ``t - 1`` is step ``t``, so the curve usually rises towards ``t = T``.

    The whole Jacobian comes from one backward pass: each sequence is repeated ``H`` times in
    the batch and copy ``i`` back-propagates only ``h_T[i]``; batch rows do not interact, so
    copy ``i``'s input gradient is row ``i`` of the Jacobian.
    """
    hidden, features = model.hidden_size, model.input_size
    if inputs is None:
        if T < 1 or batch < 1:
            raise ValueError(f"T and batch must be >= 1, got T={T}, batch={batch}")
        gen = torch.Generator().manual_seed(seed)
        param = next(model.parameters())
        inputs = torch.randn(batch, T, features, generator=gen).to(param.device, param.dtype)
    elif inputs.dim() != 3 or inputs.shape[-1] != features:
        raise ValueError(
            f"inputs must be (batch, steps, {features}), got {tuple(inputs.shape)}"
        )
    n, steps = inputs.shape[:2]
    x = inputs.detach().repeat_interleave(hidden, dim=0).requires_grad_(True)  # (n·H, T, F)
    h_T = _final_state(model, x)                                                # (n·H, H)
    pick = torch.eye(hidden, dtype=h_T.dtype, device=h_T.device).repeat(n, 1)   # copy i → unit i
    (grad,) = torch.autograd.grad((h_T * pick).sum(), x)
    jac = grad.reshape(n, hidden, steps, features)                              # ∂h_T[i]/∂x_t
    return jac.pow(2).sum(dim=(1, 3)).sqrt().mean(0).detach().cpu()


# --------------------------------------------------------------------------------------------
# The library version
# --------------------------------------------------------------------------------------------
def spectrogram_frames(x: Tensor) -> Tensor:
    """A ``(B, 1, n_mels, T)`` log-mel spectrogram as a sequence of ``T`` frames ``(B, T, n_mels)``."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected a (batch, 1, n_mels, frames) spectrogram, got {tuple(x.shape)}")
    return x[:, 0].transpose(1, 2)


class SequenceEncoder(nn.Module):
    """Token ids ``(B, L)`` (right-padded with ``padding_idx``) or frames ``(B, T, F)`` →
    ``(B, out_dim)``.

    * ``vocab_size`` given: the input is int64 token ids, embedded to ``embed_dim``; the length
      of a row is its number of non-pad tokens. ``input_dim`` given: the input is float frames
      with ``input_dim`` features, all ``T`` valid unless ``lengths`` says otherwise.
    * ``cell``: ``"rnn"`` (Elman, tanh), ``"gru"`` or ``"lstm"``; ``bidirectional`` runs a second
      RNN from the end and concatenates both directions.
    * ``padding="packed"``: the RNN never sees a pad (``pack_padded_sequence``; exact, but the
      lengths go to the CPU, a host sync on a GPU). ``padding="masked"``: the RNN runs over the
      pads and the pooling ignores them (no sync; the backward direction of a bidirectional RNN
      then starts on pads, so prefer ``packed`` there).
    * ``pooling="last"``: the final state of each direction, ``h_T`` (and ``h_1`` backwards);
      ``"mean"``: the mean of the states over the valid steps.
    * ``out_dim``: a dense ReLU layer on the pooled state; ``None`` returns the pooled state.

    ``sequence(x)`` returns the per-step states ``(B, L, hidden·dirs)`` and the validity mask
    ``(B, L)`` for attention.
    """

    CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

    def __init__(self, vocab_size: int | None = None, input_dim: int | None = None, *,
                 embed_dim: int = 32, hidden: int = 64, out_dim: int | None = None,
                 cell: str = "gru", bidirectional: bool = False, pooling: str = "last",
                 padding: str = "packed", padding_idx: int = 0, num_layers: int = 1):
        super().__init__()
        if (vocab_size is None) == (input_dim is None):
            raise ValueError("give exactly one of vocab_size (token ids) or input_dim (frames)")
        if cell not in self.CELLS:
            raise ValueError(f"cell must be one of {list(self.CELLS)}, got {cell!r}")
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {pooling!r}")
        if padding not in ("packed", "masked"):
            raise ValueError(f"padding must be 'packed' or 'masked', got {padding!r}")
        self.vocab_size, self.input_dim, self.padding_idx = vocab_size, input_dim, padding_idx
        self.cell, self.pooling, self.padding = cell, pooling, padding
        self.hidden, self.directions = hidden, 2 if bidirectional else 1
        if vocab_size is not None:
            self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
            rnn_in = embed_dim
        else:
            self.embed = None
            rnn_in = input_dim
        self.rnn = self.CELLS[cell](rnn_in, hidden, num_layers=num_layers, batch_first=True,
                                    bidirectional=bidirectional)
        self.state_dim = hidden * self.directions
        self.proj = nn.Sequential(nn.Linear(self.state_dim, out_dim), nn.ReLU()) if out_dim else None
        self.out_dim = out_dim or self.state_dim

    # -- input checks and lengths ------------------------------------------------------------
    def _inputs(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.embed is not None:
            check_token_ids(x, self.vocab_size, f"SequenceEncoder(vocab_size={self.vocab_size})")
            if lengths is None:
                lengths = (x != self.padding_idx).sum(1)
            return self.embed(x), lengths
        if x.dim() != 3 or x.shape[-1] != self.input_dim or not x.is_floating_point():
            raise ValueError(
                f"SequenceEncoder(input_dim={self.input_dim}) expects float frames "
                f"(batch, steps, {self.input_dim}), got {tuple(x.shape)} {x.dtype}"
            )
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        return x, lengths

    # -- the recurrence -------------------------------------------------------------------------
    def sequence(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-step states ``(B, L, hidden·dirs)`` (zero at pads) and the mask ``(B, L)``,
        ``True`` where a step is valid."""
        inputs, lengths = self._inputs(x, lengths)
        steps = inputs.shape[1]
        mask = torch.arange(steps, device=inputs.device)[None, :] < lengths[:, None]
        if self.padding == "packed":
            packed = pack_padded_sequence(inputs, lengths.clamp(min=1).cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, _ = self.rnn(packed)
            states, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
        else:
            states, _ = self.rnn(inputs)
        return states * mask[..., None], mask

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        """``(B, L, D)`` states → ``(B, D)``: the last valid state per direction, or the mean."""
        if self.pooling == "mean":
            return states.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        last = (mask.sum(1) - 1).clamp(min=0)
        forward = states[torch.arange(len(states), device=states.device), last, :self.hidden]
        if self.directions == 1:
            return forward
        return torch.cat([forward, states[:, 0, self.hidden:]], dim=-1)  # backward ends at t = 1

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        pooled = self.pool(*self.sequence(x, lengths))
        return pooled if self.proj is None else self.proj(pooled)


class Frames(nn.Module):
    """Adaptor: a ``(B, 1, n_mels, T)`` spectrogram → ``encoder`` over its ``T`` frames
    ``(B, T, n_mels)`` (``spectrogram_frames``). ``out_dim`` is the encoder's, so
    ``UnimodalClassifier(Frames(SequenceEncoder(input_dim=32)), "audio")`` reads audio with a GRU.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.out_dim = encoder.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(spectrogram_frames(x))
