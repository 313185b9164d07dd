"""Figures a student would rather look at than read: sample grids for each modality.

Every function returns the matplotlib ``Figure`` (so tests can inspect it without a screen)
and never calls ``plt.show()``; in a notebook the figure displays itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmcourse.tensors import to_numpy


def _grid(n: int, ncols: int, size: tuple[float, float]):
    import matplotlib.pyplot as plt

    if n < 1:
        raise ValueError(f"nothing to show: n must be >= 1, got {n}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes.flat


def show_images(images, titles: Sequence[str] | None = None, ncols: int = 8,
                cmap: str = "gray", size: tuple[float, float] = (1.3, 1.5)):
    """A grid of images ``(N, C, H, W)`` or ``(N, H, W)``; RGB when ``C == 3``."""
    images = to_numpy(images)
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images.transpose(0, 2, 3, 1)
        if images.shape[-1] == 1:
            images = images[..., 0]
    elif images.ndim != 3:
        raise ValueError(f"show_images expects (N, C, H, W) or (N, H, W), got {images.shape}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    fig, axes = _grid(len(images), ncols, size)
    for i, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(np.clip(img, 0, 1) if img.ndim == 3 else img, cmap=None if img.ndim == 3 else cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def show_spectrograms(specs, titles: Sequence[str] | None = None, ncols: int = 8,
                      size: tuple[float, float] = (1.4, 1.5)):
    """A grid of log-mel spectrograms ``(N, 1, mels, frames)``: time → right, frequency ↑."""
    specs = to_numpy(specs)
    if specs.ndim == 4:
        specs = specs[:, 0]
    if specs.ndim != 3:
        raise ValueError(f"show_spectrograms expects (N, 1, mels, frames), got {specs.shape}")
    fig, axes = _grid(len(specs), ncols, size)
    for i, (ax, spec) in enumerate(zip(axes, specs)):
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def show_av_digits(split, n: int = 6):
    """``n`` AV-Digits samples: image, spectrogram and hint of each, one column per sample."""
    import matplotlib.pyplot as plt

    if not 1 <= n <= len(split):
        raise ValueError(f"n must be in [1, {len(split)}], got {n}")
    fig, axes = plt.subplots(2, n, figsize=(1.9 * n, 4.0), squeeze=False)
    for i in range(n):
        y = int(split.tensors["label"][i])
        axes[0, i].imshow(to_numpy(split.tensors["image"][i, 0]), cmap="gray")
        axes[0, i].set_title(f"label {y}", fontsize=9)
        axes[1, i].imshow(to_numpy(split.tensors["audio"][i, 0]), origin="lower",
                          aspect="auto", cmap="magma")
        hint = split.meta["hint"][i].replace(" and ", "\nand ")
        axes[1, i].set_title(f'"{hint}"', fontsize=7)
        axes[1, i].set_xlabel(split.meta["speaker"][i], fontsize=7)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=9)
    axes[1, 0].set_ylabel("speech (log-mel)", fontsize=9)
    fig.tight_layout()
    return fig


def show_scenes(split, n: int = 8, ncols: int = 4):
    """``n`` Shapes scenes with their captions as titles, one object per line (each line after
    the first starts with its relation, "above" or "left of": the grammar has no other)."""
    if not 1 <= n <= len(split):
        raise ValueError(f"n must be in [1, {len(split)}], got {n}")
    captions = [c.replace(" above", "\nabove").replace(" left", "\nleft")
                for c in split.meta["caption"][:n]]
    return show_images(split.tensors["image"][:n], captions, ncols=ncols, size=(2.2, 2.6))


#: One colour per model (or single modality) across the course, so a reader can follow a model from
#: figure to figure and chapter to chapter. Names not listed get a grey.
MODEL_COLOURS = {
    "image": "tab:blue", "image only": "tab:blue",
    "audio": "tab:orange", "audio only": "tab:orange", "speech": "tab:orange", "speech only": "tab:orange",
    "text": "tab:gray", "text only": "tab:gray", "hint": "tab:gray", "hint only": "tab:gray",
    "product of experts": "tab:green", "average of logits": "yellowgreen", "majority vote": "olive",
    "early": "tab:purple", "early + modality dropout": "orchid", "early, noise-augmented": "indigo",
    "late": "tab:red", "late, no expert losses": "lightcoral", "vote": "olive",
    "cross-attention": "tab:brown", "tensor": "tab:cyan", "gated": "tab:pink",
    "autoencoder fill": "teal", "zero fill": "darkgray", "mean fill": "silver",
}


def model_colour(name: str) -> str:
    """The course-wide colour of a model or modality (``MODEL_COLOURS``; grey for other names)."""
    return MODEL_COLOURS.get(name, "dimgray")
