"""Pretrained weights shipped with the package, the way practice uses them: ``load(name)``.

A checkpoint is a small file ``mmcourse/checkpoints/NAME.pt`` made by a committed script (e.g.
``scripts/train_pretrained.py`` with the ``full`` profile), stored next to its SHA-256 in
``NAME.sha256`` (``sha256sum`` format: ``<hex digest>  NAME.pt``). ``load(name)`` checks the
digest *before* unpickling anything, then rebuilds the model from the recipe stored in the file:

    {"format": 1, "name": NAME, "class": "mmcourse.models....ClassName", "kwargs": {...},
     "state_dict": {...}, "meta": {...}}

and returns it in eval mode. Only classes inside ``mmcourse`` can be named, the file is read
with ``torch.load(weights_only=True)``, and nothing is ever downloaded.

* ``available()``: the names of the shipped checkpoints;
* ``load(name)`` / ``metadata(name)``: the model / what the script recorded (data, profile,
  epochs, figures);
* ``save(model, name, kwargs, meta)``: what a training script calls to write both files;
* ``load_prefix_captioner(name)``: chapter 14's prefix captioner, a checkpoint holding only the
  mapper's weights, assembled over the frozen language model and image encoder its ``meta`` names.

A ``vocab`` among the kwargs is stored as its word list (``weights_only`` reads plain values only)
and rebuilt as a ``mmcourse.data.text.Vocab``. Chapter 11 ships ``shapes_clip``; chapter 14's
checkpoints are named ``gen_*`` (``scripts/train_generation.py``).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path

import torch
from torch import nn

FOLDER = Path(__file__).resolve().parent / "checkpoints"
FORMAT = 1

__all__ = ["FOLDER", "ChecksumMismatch", "available", "image_tower", "load", "load_prefix_captioner",
           "metadata", "save", "sha256_file"]


class ChecksumMismatch(ValueError):
    """A checkpoint's bytes do not match the SHA-256 recorded beside it."""


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available(folder=None) -> list[str]:
    """Names of the checkpoints in ``folder`` (default: the package's), sorted."""
    folder = Path(folder) if folder is not None else FOLDER
    return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def _paths(name: str, folder) -> tuple[Path, Path]:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"a checkpoint name is a plain file stem such as 'shapes_clip', got {name!r}")
    folder = Path(folder) if folder is not None else FOLDER
    path = folder / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained checkpoint {name!r} in {folder}; available: "
                                f"{available(folder)}")
    return path, folder / f"{name}.sha256"


def _verified(name: str, folder) -> dict:
    path, sha_path = _paths(name, folder)
    if not sha_path.is_file():
        raise FileNotFoundError(f"checksum file {sha_path} is missing beside {path}; restore it with "
                                f"`git checkout -- {sha_path.parent.name}/` or rerun the training script")
    words = sha_path.read_text().split()
    if not words or len(words[0]) != 64:
        raise ValueError(f"{sha_path} should hold a 64-character hex SHA-256, got {sha_path.read_text()!r}")
    actual = sha256_file(path)
    if actual != words[0].lower():
        raise ChecksumMismatch(
            f"checkpoint {path} does not match its SHA-256: expected {words[0]}, got {actual}. The "
            f"file is corrupted or was changed; restore it (`git checkout -- {path.parent.name}/`) "
            "or retrain it with `python scripts/train_pretrained.py`"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a format-{FORMAT} mmcourse checkpoint")
    return blob


def metadata(name: str, folder=None) -> dict:
    """What the training script recorded about checkpoint ``name`` (verified first)."""
    blob = _verified(name, folder)
    return {"class": blob["class"], "kwargs": dict(blob["kwargs"]), **dict(blob.get("meta", {}))}


def _model_class(qualname: str):
    module, _, cls = qualname.rpartition(".")
    if not module.startswith("mmcourse."):
        raise ValueError(f"a checkpoint may only name a class inside mmcourse, got {qualname!r}")
    return getattr(importlib.import_module(module), cls)


def load(name: str, folder=None, *, device=None) -> nn.Module:
    """The pretrained model ``name``: SHA-256 verified, rebuilt, weights loaded, in eval mode."""
    blob = _verified(name, folder)
    kwargs = dict(blob["kwargs"])
    if isinstance(kwargs.get("vocab"), list):
        from mmcourse.data.text import Vocab

        kwargs["vocab"] = Vocab(kwargs["vocab"])
    model = _model_class(blob["class"])(**kwargs)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model.to(device) if device is not None else model


def save(model: nn.Module, name: str, kwargs: dict, meta: dict | None = None, folder=None) -> Path:
    """Write ``NAME.pt`` (recipe + float32 weights) and ``NAME.sha256`` into ``folder``."""
    folder = Path(folder) if folder is not None else FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = dict(kwargs)
    if kwargs.get("vocab") is not None and not isinstance(kwargs["vocab"], list):
        kwargs["vocab"] = list(kwargs["vocab"].itos)
    qualname = f"{type(model).__module__}.{type(model).__qualname__}"
    _model_class(qualname)  # only mmcourse classes
    state = {k: v.detach().cpu().float().clone() if v.is_floating_point() else v.detach().cpu().clone()
             for k, v in model.state_dict().items()}
    path = folder / f"{name}.pt"
    torch.save({"format": FORMAT, "name": name, "class": qualname, "kwargs": dict(kwargs),
                "state_dict": state, "meta": dict(meta or {})}, path)
    (folder / f"{name}.sha256").write_text(f"{sha256_file(path)}  {path.name}\n")
    return path


def image_tower(model: nn.Module) -> nn.Module:
    """The image encoder of a shipped model: a dual encoder's ``image_encoder`` or a
    captioner's ``encoder`` (chapter 14's prefix captioner freezes either)."""
    for attr in ("image_encoder", "encoder"):
        tower = getattr(model, attr, None)
        if isinstance(tower, nn.Module):
            return tower
    raise ValueError(f"a {type(model).__name__} has no image encoder (image_encoder or encoder)")


def load_prefix_captioner(name: str, folder=None):
    """Chapter 14's ``PrefixCaptioner`` from checkpoint ``name`` (a ``PrefixMapper``'s or
    ``QueryMapper``'s weights)
    over the frozen language model and image encoder named in its metadata (``language_model``,
    ``image_encoder``: other checkpoints in the same folder), in eval mode."""
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.models.prefix_captioning import PrefixCaptioner, PrefixMapper, QueryMapper

    blob = _verified(name, folder)
    if _model_class(blob["class"]) not in (PrefixMapper, QueryMapper):
        raise ValueError(f"checkpoint {name!r} holds a {blob['class']!r}, not a PrefixMapper or QueryMapper")
    meta = dict(blob.get("meta", {}))
    for key in ("language_model", "image_encoder"):
        if key not in meta:
            raise ValueError(f"checkpoint {name!r} does not name its frozen {key} in its metadata")
    lm = load(meta["language_model"], folder)
    encoder = image_tower(load(meta["image_encoder"], folder))
    model = PrefixCaptioner(lm, encoder, vocab=shapes_vocab(), **blob["kwargs"])
    model.mapper.load_state_dict(blob["state_dict"])
    model.pretrained_meta = meta
    return model.eval()
