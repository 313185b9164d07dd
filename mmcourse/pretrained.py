"""Shipped checkpoints: small trained weights that a notebook loads instead of training.

Each checkpoint is ``mmcourse/checkpoints/NAME.pt`` (a ``torch.save`` payload, a dict) with its
SHA-256 in ``NAME.sha256`` beside it; both are written by the committed script that trained them
(e.g. ``scripts/train_generation.py``). ``load(name)`` checks the digest before unpickling
anything, so a truncated or altered file is a clear error, never a silently different model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

__all__ = ["CHECKPOINTS", "ChecksumError", "available", "load", "path", "save"]

#: Where the shipped checkpoints live (inside the package, so an installed course has them).
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


class ChecksumError(RuntimeError):
    """A checkpoint's bytes do not match its recorded SHA-256."""


def _sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def path(name: str) -> Path:
    """The file of checkpoint ``name`` (it need not exist)."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"a checkpoint name is a plain file stem such as 'shapes_lm', got {name!r}")
    return CHECKPOINTS / f"{name}.pt"


def available() -> list[str]:
    """The names of the shipped checkpoints."""
    return sorted(p.stem for p in CHECKPOINTS.glob("*.pt"))


def save(name: str, payload: dict) -> Path:
    """Write ``payload`` as checkpoint ``name`` and its SHA-256 file; returns the ``.pt`` path."""
    if not isinstance(payload, dict):
        raise TypeError(f"a checkpoint payload is a dict, got {type(payload).__name__}")
    file = path(name)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, file)
    file.with_suffix(".sha256").write_text(f"{_sha256(file)}  {file.name}\n")
    return file


def load(name: str) -> dict:
    """The payload of checkpoint ``name``, on the CPU, after checking its SHA-256.

    A missing file, a missing digest or a digest mismatch is an error that names the file and
    the script to re-run; nothing is downloaded.
    """
    file = path(name)
    digest_file = file.with_suffix(".sha256")
    if not file.exists():
        raise FileNotFoundError(f"no checkpoint {name!r} at {file}; shipped: {available()}. "
                                "Re-create it with the script named in its chapter (e.g. "
                                "scripts/train_generation.py)")
    if not digest_file.exists():
        raise ChecksumError(f"checkpoint {file} has no {digest_file.name}: its integrity cannot be checked")
    want = digest_file.read_text().split()[0]
    got = _sha256(file)
    if got != want:
        raise ChecksumError(f"checkpoint {file} is corrupt or was changed: SHA-256 {got}, expected {want} "
                            f"(from {digest_file.name}); re-create it with its training script")
    return torch.load(file, map_location="cpu", weights_only=True)


def _classes() -> dict:
    from mmcourse import judges
    from mmcourse.models import captioning, image_tokenizer, language_model, retrieval, text_to_image

    return {"DualEncoder": retrieval.DualEncoder, "TinyCausalDecoder": language_model.TinyCausalDecoder,
            "Captioner": captioning.Captioner, "VQAutoencoder": image_tokenizer.VQAutoencoder,
            "TextToImage": text_to_image.TextToImage, "AttributeJudge": judges.AttributeJudge}


def model_payload(model: torch.nn.Module, config: dict, **info) -> dict:
    """The payload ``save`` writes for a model: its class name, constructor ``config`` (plain
    values), ``state_dict`` and any ``info`` (how it was trained, its figures)."""
    return {"class": type(model).__name__, "config": dict(config),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "info": info}


def load_model(name: str) -> torch.nn.Module:
    """The model of checkpoint ``name`` (written with ``model_payload``), built, loaded and in
    eval mode; its training ``info`` is in ``model.pretrained_info``."""
    payload = load(name)
    classes = _classes()
    if payload.get("class") not in classes:
        raise ValueError(f"checkpoint {name!r} holds a {payload.get('class')!r}; "
                         f"load_model knows {sorted(classes)}")
    config = dict(payload["config"])
    if "vocab" in config:  # a Vocab is stored as its word list
        from mmcourse.data.text import Vocab
        config["vocab"] = Vocab(config["vocab"])
    model = classes[payload["class"]](**config)
    model.load_state_dict(payload["state_dict"])
    model.pretrained_info = payload.get("info", {})
    return model.eval()


def load_prefix_captioner(name: str):
    """A ``PrefixCaptioner`` from checkpoint ``name`` (its mapper's weights) over the frozen
    language model and image encoder it was trained with (checkpoints ``shapes_lm`` and
    ``shapes_clip``), in eval mode."""
    from mmcourse.data.shapes import shapes_vocab
    from mmcourse.models.prefix_captioning import PrefixCaptioner

    payload = load(name)
    if payload.get("class") != "PrefixMapper":
        raise ValueError(f"checkpoint {name!r} holds a {payload.get('class')!r}, not a PrefixMapper")
    info = payload.get("info", {})
    lm = load_model(info.get("language_model", "shapes_lm"))
    encoder = load_model(info.get("image_encoder", "shapes_clip")).image_encoder
    model = PrefixCaptioner(lm, encoder, vocab=shapes_vocab(), **payload["config"])
    model.mapper.load_state_dict(payload["state_dict"])
    model.pretrained_info = info
    return model.eval()
