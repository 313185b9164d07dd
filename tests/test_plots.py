import matplotlib
import numpy as np
import pytest
import torch

from mmcourse import plots
from mmcourse.data.shapes import load_shapes, parse_caption

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


def test_show_scenes_draws_each_scene_with_its_caption_one_object_per_line():
    split = load_shapes(8, 0, 0, 32, max_shapes=3, seed=0).train
    fig = plots.show_scenes(split, n=5, ncols=3)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(drawn) == 5  # 2 rows x 3 columns, the last cell left blank
    lines_per_title = []
    for ax, image, caption in zip(drawn, split.tensors["image"][:5], split.meta["caption"][:5], strict=True):
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), image.permute(1, 2, 0).numpy())
        title = ax.get_title()
        assert title.replace("\n", " ") == caption
        objects, relations = parse_caption(caption)
        first, *rest = title.split("\n")
        assert first == "a {} {} {}".format(*objects[0])
        assert [line.removesuffix(" " + "a {} {} {}".format(*obj)) for line, obj
                in zip(rest, objects[1:], strict=True)] == relations
        lines_per_title.append(len(rest) + 1)
    assert max(lines_per_title) > 1  # the sample does show relations
    with pytest.raises(ValueError, match="n must be in"):
        plots.show_scenes(split, n=9)
