"""Template matching of digit strings: connected-word DTW (the one-pass algorithm).

The recogniser of the 1970s-80s: keep a few recorded **templates** of every word, and explain
an utterance ``x_1..x_T`` as the concatenation of templates (and silence) that DTW-aligns to it
most cheaply. Lay every template's frames side by side as states ``k`` (template frame
``r_k``), plus one silence state. With ``c_t(k) = ||x_t - r_k||``:

    D_t(k) = c_t(k) + min(D_{t-1}(k), D_{t-1}(k-1), D_{t-1}(k-2))     inside a template
    D_t(k) = c_t(k) + min(D_{t-1}(k), E_{t-1} + λ)                      at a template's first frame
    D_t(sil) = c_t(sil) + min(D_{t-1}(sil), E_{t-1})
    E_t = min(D_t(sil), min over templates' last frames D_t(k))        a word (or silence) ends

(each input frame moves 0, 1 or 2 frames along a template: a word may be said up to twice as
fast or arbitrarily slowly; ``λ`` is a word-insertion penalty). The best ``E_T`` back-traced gives
the words, and where each started and ended -- an alignment, from matching alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TemplateMatcher", "connected_word_match"]


@dataclass
class TemplateMatcher:
    """Templates ``(frames_i, F)`` with their word labels, and the silence frame ``(F,)``."""

    templates: list
    labels: list
    silence: np.ndarray
    penalty: float = 0.0

    def __post_init__(self):
        if not self.templates or len(self.templates) != len(self.labels):
            raise ValueError(f"need one label per template and at least one template, got "
                             f"{len(self.templates)} templates and {len(self.labels)} labels")
        frames = [np.asarray(t, dtype=np.float64) for t in self.templates]
        self.refs = np.concatenate(frames + [np.asarray(self.silence, np.float64)[None]])
        self.word = np.concatenate([np.full(len(f), i) for i, f in enumerate(frames)] + [[-1]])
        self.first = np.zeros(len(self.refs), dtype=bool)
        self.last = np.zeros(len(self.refs), dtype=bool)
        ends = np.cumsum([len(f) for f in frames])
        self.first[np.r_[0, ends[:-1]]] = True
        self.last[ends - 1] = True
        self.sil = len(self.refs) - 1

    def match(self, x) -> tuple[list, np.ndarray]:
        """Decode ``x (T, F)``: the labels of the best template sequence and their ``[start, end)``
        frames ``(n, 2)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.refs.shape[1]:
            raise ValueError(f"x must be (T, F={self.refs.shape[1]}), got {x.shape}")
        sq = (x**2).sum(1)[:, None] + (self.refs**2).sum(1)[None] - 2 * x @ self.refs.T
        cost = np.sqrt(np.maximum(sq, 0.0))
        t_max, k = cost.shape
        inside1 = ~self.first                       # k-1 is in the same template
        inside2 = inside1 & np.r_[False, inside1[:-1]]
        inside1[self.sil] = inside2[self.sil] = False
        enter = self.first.copy()
        exits = self.last.copy()
        exits[self.sil] = True
        d = np.where(enter, cost[0], np.inf)
        d[self.sil] = cost[0, self.sil]
        back = np.zeros((t_max, k), dtype=np.int64)         # predecessor state; -1: a new word
        exit_from = np.zeros(t_max, dtype=np.int64)
        for t in range(1, t_max):
            e_state = int(np.flatnonzero(exits)[np.argmin(d[exits])])
            exit_from[t - 1] = e_state
            e = d[e_state]
            stay = d
            step = np.where(inside1, np.r_[np.inf, d[:-1]], np.inf)
            skip = np.where(inside2, np.r_[np.inf, np.inf, d[:-2]], np.inf)
            new_word = np.where(enter, e + self.penalty, np.inf)
            new_word[self.sil] = e
            cands = np.stack([stay, step, skip, new_word])
            arg = np.argmin(cands, axis=0)
            d = cost[t] + cands[arg, np.arange(k)]
            back[t] = np.where(arg == 3, -1, np.arange(k) - arg)
        s = int(np.flatnonzero(exits)[np.argmin(d[exits])])
        words, starts, ends = [], [], []
        end = t_max
        for t in range(t_max - 1, -1, -1):
            prev = back[t, s] if t else -1
            if prev == -1:                                  # state s began at frame t
                if s != self.sil:
                    words.append(self.labels[self.word[s]])
                    starts.append(t)
                    ends.append(end)
                if t:
                    s = int(exit_from[t - 1])
                    end = t
            else:
                s = int(prev)
        bounds = np.array(list(zip(starts, ends))[::-1], dtype=np.int64).reshape(-1, 2)
        return words[::-1], bounds


def connected_word_match(x, templates, labels, silence, penalty: float = 0.0):
    """One-shot :meth:`TemplateMatcher.match`: ``(labels, bounds)`` for the utterance ``x (T, F)``."""
    return TemplateMatcher(list(templates), list(labels), np.asarray(silence), penalty).match(x)
