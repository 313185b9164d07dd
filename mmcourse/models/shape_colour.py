"""An image tower that keeps *what shape* apart from *what colour*: compositional by construction.

A plain ``ConvEncoder`` learns shape detectors from coloured pixels, so the features of a green
triangle depend on its greenness; if pretraining never showed a green triangle, its features are
out of distribution and zero-shot naming of its kind fails. This tower reads two views of the
image ``x (B, 3, S, S)`` in two streams and concatenates them:

    m_ij = clamp((max_c x_cij − lo) / (hi − lo), 0, 1)          a colour-blind silhouette
    g(x) = [ shape(m) ;  colour(avgpool_p(x)) ]                  (B, shape_dim + colour_dim)

* ``shape``: a ``ConvEncoder`` on the one-channel silhouette ``m`` -- it cannot see colour, so a
  green triangle and a red one give the same shape features;
* ``colour``: a dense layer on the image averaged over ``p × p`` cells -- a coarse map of where
  which colour is, too blurred to tell shapes apart.

``grid(x)`` is the shape stream's feature map (what a counting probe reads). With ``out_dim``
and ``dropout`` it is a drop-in image tower for ``DualEncoder(image_tower="shape_colour")``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmcourse.models.cnn import ConvEncoder
from mmcourse.tensors import check_float

__all__ = ["ShapeColourEncoder", "silhouette"]


def silhouette(x: Tensor, lo: float = 0.3, hi: float = 0.7) -> Tensor:
    """``(B, 1, S, S)``: ``clamp((max_c x_c − lo) / (hi − lo), 0, 1)`` -- 1 on any bright colour,
    0 on the dark background, whatever the hue."""
    return ((x.amax(dim=1, keepdim=True) - lo) / (hi - lo)).clamp(0.0, 1.0)


class ShapeColourEncoder(nn.Module):
    """``(B, 3, S, S)`` → ``(B, out_dim)``: a colour-blind shape stream (``out_dim − colour_dim``
    features) beside a shape-blind colour stream (``colour_dim``); see the module docstring."""

    def __init__(self, image_size: int = 32, *, width: int = 32, out_dim: int = 128, colour_dim: int = 32,
                 pool: int = 4, dropout: float = 0.0):
        super().__init__()
        if not 0 < colour_dim < out_dim:
            raise ValueError(f"colour_dim must lie in 1..out_dim-1 = {out_dim - 1}, got {colour_dim}")
        if image_size % pool:
            raise ValueError(f"image_size {image_size} must be a multiple of pool {pool}")
        self.in_channels, self.input_size, self.out_dim = 3, (image_size, image_size), out_dim
        self.shape = ConvEncoder(1, (image_size, image_size), width=width, out_dim=out_dim - colour_dim,
                                 dropout=dropout)
        self.colour = nn.Sequential(nn.AvgPool2d(pool), nn.Flatten(),
                                    nn.Linear(3 * (image_size // pool) ** 2, colour_dim), nn.ReLU())

    @property
    def grid_dim(self) -> int:
        return self.shape.grid_dim

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.shape.grid_size

    def _check(self, x: Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, *self.input_size):
            raise ValueError(f"ShapeColourEncoder expects (batch, 3, {self.input_size[0]}, "
                             f"{self.input_size[1]}) RGB images, got {tuple(x.shape)}")
        check_float(x, "ShapeColourEncoder", like=self.colour[2].weight)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return torch.cat([self.shape(silhouette(x)), self.colour(x)], dim=1)

    def grid(self, x: Tensor) -> Tensor:
        """The shape stream's feature map as regions ``(B, S/4 · S/4, grid_dim)``."""
        self._check(x)
        return self.shape.grid(silhouette(x))
