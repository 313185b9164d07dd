"""What every explorer shares: controls, one matplotlib figure shown as a PNG, a text panel.

An explorer is an ``ipywidgets.VBox`` (so a notebook displays it by ending a cell with it) whose
logic is a plain Python function, ``draw(figure, **values) -> state``: it redraws the figure
for the current control values and returns a dict of what it shows (the numbers, the captions),
with an optional ``"html"`` entry for the text panel. Nothing needs a browser:

    ex = softmax_explorer([2.0, 1.0, 0.1])
    state = ex.update(temperature=2.0)      # set controls, redraw, return the state
    ex.controls["temperature"].value = 0.5  # what a slider does: the same update runs
    ex.figure                               # a matplotlib Figure, inspectable in tests

The figure is a ``matplotlib.figure.Figure`` made without ``pyplot`` (no inline backend, no
figure left open) and rendered to an ``ipywidgets.Image``: every interaction sends one PNG, which
works in JupyterLab, VS Code and a static HTML export alike. Each explorer precomputes its model
outputs when it is built, so that an interaction only slices arrays and redraws.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable, Mapping

import numpy as np

from mmcourse.tensors import to_numpy


def new_figure(width: float, height: float, *, dpi: int = 80):
    """A ``Figure`` not registered with ``pyplot`` (nothing is shown twice or leaks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)


def image_for_imshow(img) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` / ``(H, W)`` → what ``imshow`` takes, and the colour map (``None`` for RGB)."""
    img = to_numpy(img)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img.transpose(1, 2, 0)
        if img.shape[-1] == 1:
            img = img[..., 0]
    if img.ndim == 3:
        return np.clip(img, 0, 1), None
    if img.ndim != 2:
        raise ValueError(f"expected an image (C, H, W) or (H, W), got shape {img.shape}")
    return img, "gray"


@functools.cache
def _explorer_class():
    """The ``Explorer`` class, made on first use so that importing the package does not import
    ipywidgets (and IPython)."""
    import ipywidgets as widgets

    class Explorer(widgets.VBox):
        """An explorer widget: a title, the controls (wrapped in rows), the figure and a text panel.

        ``draw(figure, **values)`` is called once when it is built and after every control change.
        Attributes: ``controls`` (name → widget), ``figure``, ``image`` (the PNG widget), ``text``
        (an ``HTML`` widget), ``state`` (what the last ``draw`` returned) and ``last_ms`` (how long
        the last update took). It carries the CSS classes ``mmcourse-explorer`` and
        ``mmcourse-<name>`` (the browser test finds it by them).
        """

        def __init__(self, name: str, controls: Mapping[str, widgets.ValueWidget],
                     draw: Callable[..., dict], figure, *, title: str = "", dpi: int = 80):
            self.name, self.controls, self.figure = name, dict(controls), figure
            self._draw, self._dpi, self._hold = draw, dpi, False
            self.state: dict = {}
            self.last_ms = 0.0
            self.image = widgets.Image(format="png", layout=widgets.Layout(width="auto", max_width="100%"))
            self.text = widgets.HTML()
            row = widgets.Box(list(self.controls.values()),
                              layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                    align_items="center"))
            header = [widgets.HTML(f"<b>{title}</b>")] if title else []
            super().__init__([*header, row, self.image, self.text])
            self.add_class("mmcourse-explorer")
            self.add_class(f"mmcourse-{name}")
            for w in self.controls.values():
                w.observe(self._on_change, names="value")
            self.refresh()

        def values(self) -> dict:
            """The current value of every control."""
            return {k: w.value for k, w in self.controls.items()}

        def update(self, **values) -> dict:
            """Set the given controls (an unknown name is an error), redraw once, return the state."""
            unknown = sorted(set(values) - set(self.controls))
            if unknown:
                raise KeyError(f"the {self.name} explorer has no control {unknown}; its controls are "
                               f"{sorted(self.controls)}")
            self._hold = True
            try:
                for key, value in values.items():
                    self.controls[key].value = value
            finally:
                self._hold = False
            return self.refresh()

        def refresh(self) -> dict:
            """Redraw for the current control values and send the PNG; returns the new state."""
            start = time.perf_counter()
            state = self._draw(self.figure, **self.values())
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=self._dpi, pil_kwargs={"compress_level": 1})
            self.image.value = buf.getvalue()
            self.text.value = state.get("html", "")
            self.state = state
            self.last_ms = 1000 * (time.perf_counter() - start)
            return state

        def _on_change(self, change) -> None:
            if not self._hold:
                self.refresh()

    Explorer.__qualname__ = "Explorer"
    return Explorer


def make_explorer(name: str, controls: Mapping[str, object], draw: Callable[..., dict], figure, *,
                  title: str = "", dpi: int = 80):
    """``Explorer(name, controls, draw, figure, title=..., dpi=...)``; see ``Explorer``."""
    return _explorer_class()(name, controls, draw, figure, title=title, dpi=dpi)


def __getattr__(name: str):
    if name == "Explorer":
        return _explorer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def slider_style() -> dict:
    """Slider keyword arguments shared by every explorer: a readable description column and no
    update while dragging (one redraw when the handle is released or an arrow key pressed)."""
    return {"continuous_update": False, "style": {"description_width": "initial"}}
