"""ViT patch embedding: an image becomes a sequence of tokens, one per ``p × p`` patch.

An image ``x (C, H, W)`` is cut into ``N = (H/p)(W/p)`` non-overlapping patches, each flattened
to a vector ``x_n ∈ R^{C p²}`` (row-major over the patch grid, channels first inside a patch),
and projected by one shared linear map; a learned position embedding says where it came from:

    z_n = W x_n + b + e_n,     W ∈ R^{d × C p²},  e_n ∈ R^d,   n = 1..N.

The projection of every patch by the same ``W`` is exactly a convolution with kernel ``p`` and
stride ``p`` whose filters are the rows of ``W`` (``PatchEmbedding.as_conv``), which is how
libraries implement it. Without ``e_n`` the transformer that reads the tokens is blind to
where a patch was (attention is permutation-equivariant).

``stem_width`` optionally runs a small convolutional stem first (a "hybrid" ViT): two ``3×3``
stride-2 convolutions with ReLU (``stem_norm``: each followed by BatchNorm), then patches of the
feature map. On small data it gives the patches local edges to work with, which a linear map of
raw pixels must learn. BatchNorm is not a free win: on easy-VQA it made an image → shape
classifier learn far faster (validation 0.93 → 0.997 after 8 epochs), yet the full VQA model
with it reached a *lower* validation accuracy (0.933 against 0.974 after 10 epochs), so the
chapter's models leave it off. Nor is depth: ``stem_depth=3`` (a stride-1 convolution between the
two strided ones) reached 0.830 after the same 10 epochs, so the chapter keeps two.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.tensors import check_float


def as_float_image(x: Tensor, where: str) -> Tensor:
    """``x (B, C, H, W)``: uint8 pixels scaled to [0, 1], a float image passed through."""
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"{where} expects images (batch, channels, height, width), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x


def patchify(images: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` → ``(B, N, C·p·p)``: the ``p × p`` patches, row-major, flattened
    channels first (the order ``F.unfold`` and a strided convolution use)."""
    if images.dim() != 4:
        raise ValueError(f"patchify expects images (batch, channels, height, width), "
                         f"got {tuple(images.shape)}")
    b, c, h, w = images.shape
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch size {patch} must divide the image height and width, got {h}x{w}")
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)    # (B, C, gh, p, gw, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                                    # (B, gh, gw, C, p, p)
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def conv_stem(in_channels: int, width: int, norm: bool = False, depth: int = 2) -> nn.Sequential:
    """``depth`` ``3×3`` conv + ReLU stages: ``(B, C, H, W)`` → ``(B, 2·width, H/4, W/4)``. The
    first and the last have stride 2 (strided rather than max-pooled: on a CPU the
    full-resolution activations cost more memory traffic than the arithmetic); any between them
    (``depth > 2``) keep stride 1 and width ``width`` at ``H/2``. ``norm``: BatchNorm after each
    convolution."""
    if not isinstance(depth, int) or depth < 2:
        raise ValueError(f"conv_stem depth must be an int >= 2 (two strided convolutions), got {depth!r}")

    def stage(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU()] if norm else [conv, nn.ReLU()]
    middle = [m for _ in range(depth - 2) for m in stage(width, width, 1)]
    return nn.Sequential(*stage(in_channels, width, 2), *middle, *stage(width, 2 * width, 2))


class PatchEmbedding(nn.Module):
    """``(B, C, H, W)`` images (float, or uint8 scaled by 1/255) → ``(B, N, dim)`` patch tokens
    ``z_n = W x_n + b + e_n`` with learned position embeddings ``e_n``.

    ``stem_width``: if given, a ``conv_stem`` of that width runs first and the patches are cut
    from its ``(2·width, H/4, W/4)`` feature map (``patch`` then counts feature-map cells).
    ``stem_norm``: BatchNorm in that stem; ``stem_depth``: its number of convolutions. ``grid``
    is the ``(gh, gw)`` patch grid, ``num_patches = gh · gw``.
    """

    def __init__(self, image_size: int | tuple[int, int], patch: int, dim: int, in_channels: int = 3,
                 *, stem_width: int | None = None, stem_norm: bool = False, stem_depth: int = 2):
        super().__init__()
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        self.image_size, self.in_channels, self.patch, self.dim = (h, w), in_channels, patch, dim
        self.stem = conv_stem(in_channels, stem_width, stem_norm, stem_depth) if stem_width else None
        c, fh, fw = (2 * stem_width, h // 4, w // 4) if stem_width else (in_channels, h, w)
        if (stem_width and (h % 4 or w % 4)) or fh % patch or fw % patch:
            where = "stem feature map" if stem_width else "image"
            raise ValueError(f"patch size {patch} must divide the {where} "
                             f"{fh}x{fw} (image {h}x{w})")
        self.grid = (fh // patch, fw // patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.proj = nn.Linear(c * patch * patch, dim)                        # W, b
        self.pos = nn.Parameter(0.02 * torch.randn(1, self.num_patches, dim))  # e_n

    def forward(self, images: Tensor) -> Tensor:
        x = as_float_image(images, type(self).__name__)
        if tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ValueError(f"{type(self).__name__} expects images (batch, {self.in_channels}, "
                             f"{self.image_size[0]}, {self.image_size[1]}), got {tuple(images.shape)}")
        check_float(x, type(self).__name__, like=self.proj.weight)
        if self.stem is not None:
            x = self.stem(x)
        return self.proj(patchify(x, self.patch)) + self.pos

    @torch.no_grad()
    def as_conv(self) -> nn.Conv2d:
        """The same projection ``W x_n + b`` as an ``nn.Conv2d(kernel=stride=p)`` (no position
        embedding, after the stem if any): ``conv(x).flatten(2).transpose(1, 2)`` equals
        ``proj(patchify(x))``."""
        conv = nn.Conv2d(self.proj.in_features // self.patch**2, self.dim, self.patch, stride=self.patch)
        conv.weight.copy_(self.proj.weight.reshape(conv.weight.shape))
        conv.bias.copy_(self.proj.bias)
        return conv.to(self.proj.weight.device)


def sinusoidal_positions(n: int, dim: int) -> Tensor:
    """Fixed position embeddings ``(n, dim)`` (Vaswani et al.):
    ``PE[t, 2i] = sin(t / 10000^{2i/d})``, ``PE[t, 2i+1] = cos(t / 10000^{2i/d})``."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    t = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(-torch.arange(0, dim, 2, dtype=torch.float32) / dim * torch.log(torch.tensor(10000.0)))
    pe = torch.zeros(n, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(t * freq), torch.cos(t * freq)
    return pe


__all__ = ["PatchEmbedding", "as_float_image", "conv_stem", "patchify", "sinusoidal_positions"]
