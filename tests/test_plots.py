import matplotlib
import pytest
import torch

from mmcourse import plots

matplotlib.use("Agg")


def test_show_images_grid_titles_and_rgb():
    fig = plots.show_images(torch.rand(5, 3, 8, 8), titles=list("abcde"), ncols=3)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == list("abcde") and len(fig.axes) == 6  # 2 rows x 3 cols
    assert fig.axes[0].images[0].get_array().shape == (8, 8, 3)
    gray = plots.show_images(torch.rand(2, 1, 8, 8))
    assert gray.axes[0].images[0].get_array().shape == (8, 8)
    with pytest.raises(ValueError, match=r"expects \(N, C, H, W\)"):
        plots.show_images(torch.rand(8, 8))
    with pytest.raises(ValueError, match="2 titles for 5 images"):
        plots.show_images(torch.rand(5, 1, 4, 4), titles=["a", "b"])


def test_show_av_digits_has_image_speech_and_hint(av_digits):
    fig = plots.show_av_digits(av_digits.train, n=4)
    assert len(fig.axes) == 8
    assert fig.axes[0].get_title() == f"label {int(av_digits.train.tensors['label'][0])}"
    assert av_digits.train.meta["hint"][0].split(" and ")[0] in fig.axes[4].get_title()
    spec = plots.show_spectrograms(av_digits.train.tensors["audio"][:3], titles=["x", "y", "z"])
    assert [ax.get_title() for ax in spec.axes] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="n must be in"):
        plots.show_av_digits(av_digits.train, n=0)
