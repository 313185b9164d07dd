"""A CTC speech recogniser: a small convolutional encoder over log-mel frames (optionally + a GRU).

For an utterance ``x (F, T)`` (log-mel bands × frames), with ``L`` layers (default 4):

    h^l = ReLU(BN(conv_l(h^{l-1}))),  h^0 = x     1-D convolutions over time, kernel 5, C channels
    g_t = h^L_t    or, with rnn=True,   g_t = [GRU→(h^L)_t ; GRU←(h^L)_t]
    log y_t = log_softmax(W g_t + b)              over V = 10 digits + the blank (class 10)

one distribution per frame (no downsampling, so alignments are in the data's 30 ms frames;
frames past an utterance's length are zeroed after every convolution, so a batch's padding
never changes an utterance's posteriors),
trained with ``L = CTC(log y, digits)`` (``torch.nn.functional.ctc_loss``, which the course's
from-scratch ``mmcourse.alignment.ctc_loss`` matches). The default is purely convolutional: each
output frame sees ``1 + 4 L = 17`` frames (half a second), and a CPU trains it in seconds; a
bidirectional GRU (``rnn=True``) sees the whole utterance but is several times slower on a CPU.

The batch: ``audio (B, F, T)``, ``audio_lengths (B,)`` and, to get a loss, ``digits (B, S)``
(``-1`` padded) with ``digit_lengths (B,)``. The output: ``logits (B, T', V)`` log-probabilities
(``T'`` the longest utterance of the batch), ``loss`` when targets are given, and
``extras["lengths"]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.output import ModelOutput

__all__ = ["CTCRecognizer"]


class CTCRecognizer(nn.Module):
    """Conv (+ optional BiGRU) encoder with a per-frame softmax over the digits and the blank."""

    modalities = ("audio",)

    def __init__(self, n_mels: int = 32, channels: int = 64, hidden: int = 64, num_digits: int = 10,
                 conv_layers: int = 4, rnn: bool = False, dropout: float = 0.1, norm: bool = True):
        super().__init__()
        if conv_layers < 1:
            raise ValueError(f"conv_layers must be >= 1, got {conv_layers}")
        self.n_mels, self.blank = n_mels, num_digits
        self.conv = nn.ModuleList(
            nn.Sequential(nn.Conv1d(n_mels if i == 0 else channels, channels, 5, padding=2),
                          *([nn.BatchNorm1d(channels)] if norm else []), nn.ReLU(), nn.Dropout(dropout))
            for i in range(conv_layers))
        self.rnn = nn.GRU(channels, hidden, batch_first=True, bidirectional=True) if rnn else None
        self.head = nn.Linear(2 * hidden if rnn else channels, num_digits + 1)

    def forward(self, batch) -> ModelOutput:
        if "audio" not in batch or "audio_lengths" not in batch:
            raise KeyError(f"CTCRecognizer needs 'audio' (B, {self.n_mels}, T) and 'audio_lengths' (B,) "
                           f"in the batch, got {list(batch)}")
        x, lengths = batch["audio"], batch["audio_lengths"].long()
        if x.dim() != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"audio must be (B, {self.n_mels}, T) log-mel frames, got {tuple(x.shape)}")
        t_max = int(lengths.max())
        valid = (torch.arange(t_max, device=x.device)[None, :] < lengths[:, None])[:, None]
        h = x[:, :, :t_max] * valid
        for block in self.conv:           # frames past an utterance's end are zeros at every layer,
            h = block(h) * valid          # so padding never changes a shorter utterance's output
        h = h.transpose(1, 2)                                     # (B, T, C)
        if self.rnn is not None:
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            h, _ = self.rnn(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=t_max)
        log_probs = self.head(h).log_softmax(-1)                  # (B, T, V)
        loss = None
        if "digits" in batch:
            targets, target_lengths = batch["digits"].long(), batch["digit_lengths"].long()
            loss = F.ctc_loss(log_probs.transpose(0, 1).float(), targets.clamp(min=0), lengths,
                              target_lengths, blank=self.blank, zero_infinity=True)
        return ModelOutput(logits=log_probs, loss=loss, extras={"lengths": lengths})
