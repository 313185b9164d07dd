"""Checkpoints: trained weights, optimizer state and history in one file, refused by a model of
another shape with a clear error."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mmcourse.train.history import History


def model_signature(model: nn.Module) -> dict:
    """What must match for a checkpoint to fit a model: its class and parameter shapes."""
    return {"class": type(model).__name__,
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def save_checkpoint(path, model: nn.Module, *, optimizer=None, history: History | None = None,
                    extra: dict | None = None) -> Path:
    """Save weights (moved to CPU), optimizer state, history and ``extra`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "signature": model_signature(model),
        "history": history.to_dict() if history is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "extra": extra or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path, model: nn.Module, *, optimizer=None) -> History:
    """Load weights saved by ``save_checkpoint`` into ``model`` (on whatever device it is on)
    and return the saved history. A checkpoint of a different model is a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    want, got = model_signature(model), state.get("signature", {})
    if want != got:
        diff = sorted(k for k in set(want["shapes"]) | set(got.get("shapes", {}))
                      if want["shapes"].get(k) != got.get("shapes", {}).get(k))
        raise ValueError(
            f"checkpoint {path} holds a {got.get('class')!r} whose parameters differ from this "
            f"{want['class']!r} (first differing: {diff[:5]}); delete it or pass another path"
        )
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    hist = state.get("history")
    return History.from_dict(hist, loaded_from=str(path)) if hist else History(loaded_from=str(path))
