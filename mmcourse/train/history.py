"""The record of a training run: one dict of figures per epoch, and a plot of it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class History:
    """Per-epoch figures recorded by ``fit()``: one dict per epoch (``epoch``, ``train_loss``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``, ...). ``best_epoch`` is the epoch with
    the best ``monitor`` figure (the weights ``fit`` kept when it stopped early)."""

    records: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    loaded_from: str | None = None
    monitor: str | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        """All epochs' values of one figure, e.g. ``history["val_accuracy"]``."""
        if not self.records or key not in self.records[-1]:
            have = sorted(self.records[-1]) if self.records else []
            raise KeyError(f"history has no figure {key!r}; it has {have}")
        return [r.get(key, math.nan) for r in self.records]

    @property
    def last(self) -> dict:
        if not self.records:
            raise ValueError("history is empty: no epoch has been run")
        return self.records[-1]

    def to_dict(self) -> dict:
        return {"records": self.records, "best_epoch": self.best_epoch,
                "stopped_early": self.stopped_early, "monitor": self.monitor}

    @classmethod
    def from_dict(cls, state: Mapping, loaded_from: str | None = None) -> History:
        return cls(records=[dict(r) for r in state["records"]], best_epoch=state.get("best_epoch"),
                   stopped_early=bool(state.get("stopped_early", False)), loaded_from=loaded_from,
                   monitor=state.get("monitor"))

    def plot(self, ax=None, title: str | None = None):
        """Loss curves (left axis) and accuracy curves (right axis) against the epoch (integer
        ticks); a dotted line marks the best epoch, named in the legend, which sits outside the
        plotting area so it never hides a curve."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        if not self.records:
            raise ValueError("history is empty: nothing to plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 3.4))
        epochs = self["epoch"]
        keys = self.records[-1].keys()
        for key, colour in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
            if key in keys:
                ax.plot(epochs, self[key], marker="o", ms=3, color=colour, label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        acc_keys = [k for k in ("train_accuracy", "val_accuracy") if k in keys]
        handles, labels = ax.get_legend_handles_labels()
        if acc_keys:
            ax2 = ax.twinx()
            for key, style in zip(acc_keys, ("--", "-.")):
                ax2.plot(epochs, self[key], style, color="tab:green" if "val" in key else "tab:olive",
                         label=key.replace("_", " "))
            ax2.set_ylabel("accuracy")
            h2, l2 = ax2.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if self.best_epoch is not None:
            line = ax.axvline(self.best_epoch, color="grey", lw=0.8, ls=":")
            handles.append(line)
            labels.append(f"best epoch ({self.monitor or 'monitor'})")
        # a fixed distance in points from the axes' right edge, past the accuracy axis's tick
        # labels and label whatever the panel's width (a fraction of the width overlaps them on
        # narrow panels)
        from matplotlib.transforms import offset_copy

        past = offset_copy(ax.transAxes, fig=ax.figure, x=55 if acc_keys else 8, units="points")
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  bbox_transform=past, borderaxespad=0.0)
        ax.set_title(title or "training history")
        ax.figure.tight_layout()
        return ax.figure
