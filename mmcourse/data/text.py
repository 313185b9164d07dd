"""Word-level tokenisation shared by every text modality in the course.

A caption or hint is lower-cased and split on whitespace; each word maps to an integer id in a
``Vocab``. Four special tokens come first: ``<pad>`` = 0 (padding, ignored by losses and masks),
``<bos>`` / ``<eos>`` (start and end of a sequence, used for generation ``p(x) = ∏ p(x_t|x_<t)``)
and ``<unk>`` (a word outside the vocabulary -- only when explicitly allowed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)


def tokenize(text: str) -> list[str]:
    """Lower-case words; punctuation is not used by the course's grammars."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return text.lower().split()


class Vocab:
    """A fixed mapping word <-> id with the four special tokens at ids 0..3."""

    def __init__(self, words: Iterable[str]):
        seen = dict.fromkeys(SPECIALS)
        for word in words:
            if not isinstance(word, str) or not word or word != word.strip():
                raise ValueError(f"vocabulary words must be non-empty stripped strings, got {word!r}")
            seen.setdefault(word, None)
        self.itos: list[str] = list(seen)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocab:
        """A vocabulary of every word in ``texts``, in sorted order (so it is deterministic)."""
        return cls(sorted({w for t in texts for w in tokenize(t)}))

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def encode(self, text: str, *, bos: bool = False, eos: bool = False,
               allow_unknown: bool = False) -> list[int]:
        """Token ids of ``text``; an unknown word is an error unless ``allow_unknown``."""
        ids = []
        for word in tokenize(text):
            if word in self.stoi:
                ids.append(self.stoi[word])
            elif allow_unknown:
                ids.append(self.unk_id)
            else:
                raise KeyError(
                    f"word {word!r} in {text!r} is not in the vocabulary of {len(self)} tokens; "
                    "pass allow_unknown=True to map it to <unk>"
                )
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Iterable[int], *, strip_special: bool = True) -> str:
        """The words for ``ids``, stopping at ``<eos>`` and dropping specials by default."""
        words = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self):
                raise IndexError(f"token id {i} is outside the vocabulary [0, {len(self)})")
            word = self.itos[i]
            if strip_special and word == EOS:
                break
            if strip_special and word in SPECIALS:
                continue
            words.append(word)
        return " ".join(words)

    def encode_batch(self, texts: Sequence[str], *, length: int | None = None, bos: bool = False,
                     eos: bool = False, allow_unknown: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad ``texts`` into a ``(N, L)`` long tensor of ids and a ``(N,)`` tensor of lengths.

        ``length`` fixes ``L`` (longer texts are an error, not silently cut); by default ``L`` is
        the longest text.
        """
        encoded = [self.encode(t, bos=bos, eos=eos, allow_unknown=allow_unknown) for t in texts]
        lengths = [len(e) for e in encoded]
        width = max(lengths, default=0) if length is None else length
        if lengths and max(lengths) > width:
            raise ValueError(f"a text has {max(lengths)} tokens, more than length={width}")
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
        return ids, torch.tensor(lengths, dtype=torch.long)
