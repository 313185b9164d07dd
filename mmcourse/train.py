"""One training loop for every model in the course: ``fit()`` and ``evaluate()``.

A model takes a batch -- a dict of modality tensors such as ``{"image": (B,1,28,28),
"audio": (B,1,32,32), "label": (B,)}`` -- and returns outputs (usually logits). Training
minimises the mean loss over mini-batches with a gradient step per batch,

    θ ← θ − η ∇_θ (1/|B|) Σ_{i∈B} L(f_θ(x_i), y_i),

where ``L`` is cross-entropy ``−log softmax(f_θ(x))_y`` unless a ``loss_fn`` says otherwise.

What the loop does for you:

* moves batches to the device; a ``ModalDataset`` that fits is moved to the device *once* and
  batches are sliced from it there, never re-copied;
* mixed precision (``amp``) on CUDA (bf16 where supported, else fp16 with loss scaling);
* gradient-norm clipping, early stopping on a validation metric (best weights restored);
* a ``tqdm.auto`` progress bar, and a ``History`` of per-epoch figures that plots itself;
* checkpoints: ``fit(..., checkpoint="ckpt.pt")`` saves the trained weights and history, and a
  later call with the same path loads them instead of training again.

Running sums stay on the device during an epoch; the host reads them once per epoch, so the
step itself has no host synchronisation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.config import device as default_device
from mmcourse.data.base import ModalDataset

Batch = dict[str, Tensor]
LossFn = Callable[[object, Batch], Tensor]

#: A ModalDataset up to this many bytes is kept resident on an accelerator.
RESIDENT_LIMIT_BYTES = 2 * 1024**3


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch figures recorded by ``fit()``: one dict per epoch (``epoch``, ``train_loss``,
    ``val_loss``, ``val_accuracy``, ``lr``, ``seconds``, ...)."""

    records: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    loaded_from: str | None = None

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
        return {
            "records": self.records,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_dict(cls, state: Mapping, loaded_from: str | None = None) -> History:
        return cls(
            records=[dict(r) for r in state["records"]],
            best_epoch=state.get("best_epoch"),
            stopped_early=bool(state.get("stopped_early", False)),
            loaded_from=loaded_from,
        )

    def plot(self, ax=None, title: str | None = None):
        """Loss curves (left axis) and accuracy curves (right axis) against epoch."""
        import matplotlib.pyplot as plt

        if not self.records:
            raise ValueError("history is empty: nothing to plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.2))
        epochs = self["epoch"]
        keys = self.records[-1].keys()
        for key in ("train_loss", "val_loss"):
            if key in keys:
                ax.plot(epochs, self[key], marker="o", ms=3, label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
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
            ax.axvline(self.best_epoch, color="grey", lw=0.8, ls=":")
        ax.legend(handles, labels, fontsize=8, loc="center right")
        ax.set_title(title or "training history")
        ax.figure.tight_layout()
        return ax.figure


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------
def _nbytes(data: ModalDataset) -> int:
    return sum(t.numel() * t.element_size() for t in data.tensors.values())


def to_device(batch: Mapping[str, Tensor], dev: torch.device, non_blocking: bool = True) -> Batch:
    """Move every tensor of a batch dict to ``dev`` (non-tensors are passed through)."""
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"a batch must be a dict of modality tensors, got {type(batch).__name__}"
        )
    return {
        k: v.to(dev, non_blocking=non_blocking) if isinstance(v, Tensor) else v
        for k, v in batch.items()
    }


def prepare(data, dev: torch.device):
    """Place a dataset for iteration: a ``ModalDataset`` that fits goes to ``dev`` once."""
    if isinstance(data, ModalDataset):
        if len(data) == 0:
            raise ValueError(f"dataset {data.name!r} is empty")
        if dev.type == "cpu" or _nbytes(data) <= RESIDENT_LIMIT_BYTES:
            return data.to(dev)
    return data


def iterate_batches(data, batch_size: int, *, shuffle: bool = False,
                    generator: torch.Generator | None = None, dev: torch.device | None = None,
                    drop_last: bool = False) -> Iterable[Batch]:
    """Yield batch dicts from a ``ModalDataset`` (sliced in place), a ``DataLoader`` or any
    iterable of batch dicts (moved to ``dev``), or a map-style ``Dataset`` (wrapped in a
    ``DataLoader`` with ``num_workers=0``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, ModalDataset):
        n = len(data)
        on_device = dev is None or data.device == dev
        if shuffle:
            order = torch.randperm(n, generator=generator).to(data.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if shuffle:
                idx = order[start:start + batch_size]
                batch = {k: v[idx] for k, v in data.tensors.items()}
            else:
                batch = {k: v[start:start + batch_size] for k, v in data.tensors.items()}
            yield batch if on_device else to_device(batch, dev)
        return
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
        data, torch.utils.data.IterableDataset
    ):
        data = torch.utils.data.DataLoader(
            data, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0,
            drop_last=drop_last,
        )
    for batch in data:
        yield to_device(batch, dev) if dev is not None else batch


def _num_batches(data, batch_size: int) -> int | None:
    """Batches per epoch: ceil(N / batch_size) for a dataset, len() for a loader, else None."""
    try:
        n = len(data)
    except TypeError:
        return None
    return math.ceil(n / batch_size) if isinstance(data, torch.utils.data.Dataset) else n


# --------------------------------------------------------------------------------------------
# Loss and forward
# --------------------------------------------------------------------------------------------
def classification_loss(target: str = "label") -> LossFn:
    """Cross-entropy of logits against ``batch[target]``; a dict output with ``"loss"`` wins."""

    def loss_fn(outputs, batch: Batch) -> Tensor:
        if isinstance(outputs, Mapping):
            if "loss" in outputs:
                return outputs["loss"]
            outputs = outputs["logits"]
        if target not in batch:
            raise KeyError(
                f"the loss needs the target {target!r} in the batch; the batch has {list(batch)}"
            )
        return F.cross_entropy(outputs.float(), batch[target])

    return loss_fn


def _model_loss(model: nn.Module) -> LossFn | None:
    """A model may define its own objective as a method ``loss(outputs, batch)``."""
    loss = getattr(model, "loss", None)
    return loss if callable(loss) and not isinstance(loss, nn.Module) else None


def _logits(outputs):
    if isinstance(outputs, Mapping):
        return outputs.get("logits")
    return outputs


def _check_modalities(model: nn.Module, data) -> None:
    """If the model declares ``modalities``, the data must provide each of them."""
    wanted = getattr(model, "modalities", None)
    if wanted is None or not isinstance(data, ModalDataset):
        return
    missing = [m for m in wanted if m not in data]
    if missing:
        raise KeyError(
            f"{type(model).__name__} expects modalities {list(wanted)}, but dataset "
            f"{data.name!r} has {list(data.keys)} (missing {missing})"
        )


def _autocast(dev: torch.device, amp: bool):
    if not amp:
        return torch.autocast(device_type=dev.type, enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _resolve_amp(amp: bool | None, dev: torch.device) -> bool:
    if amp is None:
        return dev.type == "cuda"
    if amp and dev.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, but training runs on {dev}")
    return bool(amp)


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: nn.Module, data, *, loss_fn: LossFn | None = None, target: str = "label",
             batch_size: int = 512, device=None, amp: bool | None = None,
             return_outputs: bool = False) -> dict:
    """Mean loss (and accuracy, for logits with a ``target``) of ``model`` over ``data``.

    ``accuracy = (1/N) Σ_i [argmax_y f(x_i)_y = y_i]``. With ``return_outputs=True`` the result
    also holds ``"logits"`` (N, C) and ``"targets"`` (N,) on the CPU, for metrics and plots.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    amp = _resolve_amp(amp, dev)
    loss_fn = loss_fn or _model_loss(model) or classification_loss(target)
    _check_modalities(model, data)
    data = prepare(data, dev)
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    count = 0
    kept_logits, kept_targets = [], []
    has_accuracy = True
    try:
        for batch in iterate_batches(data, batch_size, dev=dev):
            with _autocast(dev, amp):
                outputs = model(batch)
                loss = loss_fn(outputs, batch)
            n = _batch_len(batch)
            total_loss += loss.detach().float() * n
            count += n
            logits = _logits(outputs)
            if has_accuracy and isinstance(logits, Tensor) and logits.dim() == 2 and target in batch:
                correct += (logits.argmax(dim=1) == batch[target]).sum()
                if return_outputs:
                    kept_logits.append(logits.float().cpu())
                    kept_targets.append(batch[target].cpu())
            else:
                has_accuracy = False
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got no batches: the dataset is empty")
    result = {"loss": total_loss.item() / count, "n": count}
    if has_accuracy:
        result["accuracy"] = correct.item() / count
        if return_outputs:
            result["logits"] = torch.cat(kept_logits)
            result["targets"] = torch.cat(kept_targets)
    return result


def _batch_len(batch: Mapping[str, Tensor]) -> int:
    for value in batch.values():
        if isinstance(value, Tensor) and value.dim() > 0:
            return value.shape[0]
    raise ValueError(f"cannot tell the batch size: no tensor in batch with keys {list(batch)}")


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
def model_signature(model: nn.Module) -> dict:
    """What must match for a checkpoint to fit a model: its class and parameter shapes."""
    return {
        "class": type(model).__name__,
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


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
        diff = sorted(
            k for k in set(want["shapes"]) | set(got.get("shapes", {}))
            if want["shapes"].get(k) != got.get("shapes", {}).get(k)
        )
        raise ValueError(
            f"checkpoint {path} holds a {got.get('class')!r} whose parameters differ from this "
            f"{want['class']!r} (first differing: {diff[:5]}); delete it or pass another path"
        )
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    hist = state.get("history")
    return History.from_dict(hist, loaded_from=str(path)) if hist else History(loaded_from=str(path))


# --------------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------------
def fit(model: nn.Module, train, val=None, *, epochs: int = 10, lr: float = 1e-3,
        batch_size: int = 64, optimizer: torch.optim.Optimizer | None = None,
        weight_decay: float = 0.0, scheduler=None, loss_fn: LossFn | None = None,
        target: str = "label", device=None, amp: bool | None = None,
        clip_grad_norm: float | None = None, patience: int | None = None,
        monitor: str = "val_loss", checkpoint=None, retrain: bool = False, seed: int | None = 0,
        progress: bool = True, desc: str | None = None,
        after_backward: Callable[[nn.Module, Batch, object], None] | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs and return its ``History``.

    ``train``/``val``: a ``ModalDataset`` (kept on the device), a ``DataLoader`` or any iterable
    of batch dicts. The optimizer defaults to AdamW(``lr``, ``weight_decay``); ``scheduler`` (if
    given) is stepped once per epoch. ``loss_fn(outputs, batch)`` defaults to the model's own
    ``loss(outputs, batch)`` method if it has one, else cross-entropy on ``batch[target]``; a
    model returning ``{"loss": ...}`` needs none.

    ``clip_grad_norm`` rescales gradients so that ``||g||_2 <= clip_grad_norm``. ``patience``
    stops when ``monitor`` (``"val_loss"``, lower is better, or ``"val_accuracy"``) has not
    improved for that many epochs, and restores the best weights. ``amp`` defaults to on for CUDA.
    ``seed`` seeds the shuffling and PyTorch's global RNG (dropout), so a run reproduces.

    ``checkpoint``: a path. If it exists (and ``retrain`` is false) the weights and history are
    loaded and training is skipped; otherwise the trained model is saved there.

    ``after_backward(model, batch, outputs)``, if given, is called after every backward pass and
    before clipping and the optimizer step: a hook to rescale or perturb gradients (e.g. the
    per-modality gradient modulation of ``mmcourse.robustness.OGMGE``).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if monitor not in ("val_loss", "val_accuracy", "train_loss"):
        raise ValueError(
            f"monitor must be 'val_loss', 'val_accuracy' or 'train_loss', got {monitor!r}"
        )
    if monitor.startswith("val") and patience is not None and val is None:
        raise ValueError(f"early stopping on {monitor!r} needs validation data (val=...)")
    dev = torch.device(device) if device is not None else default_device()
    model.to(dev)
    if checkpoint is not None and Path(checkpoint).exists() and not retrain:
        history = load_checkpoint(checkpoint, model)
        if progress:
            print(f"loaded trained weights from {checkpoint} ({len(history)} epochs); "
                  "pass retrain=True to train again")
        return history

    amp = _resolve_amp(amp, dev)
    loss_fn = loss_fn or _model_loss(model) or classification_loss(target)
    _check_modalities(model, train)
    if val is not None:
        _check_modalities(model, val)
    if seed is not None:
        torch.manual_seed(seed)
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    train_data = prepare(train, dev)
    val_data = prepare(val, dev) if val is not None else None
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    use_scaler = amp and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    steps = _num_batches(train_data, batch_size)
    history = History()
    minimise = monitor != "val_accuracy"
    best_value, best_state, since_best = math.inf if minimise else -math.inf, None, 0

    from tqdm.auto import tqdm

    bar = tqdm(total=steps * epochs if steps else None, desc=desc or type(model).__name__,
               disable=not progress, unit="batch", leave=True, mininterval=0.5)
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            model.train()
            total = torch.zeros((), device=dev)
            count = 0
            for batch in iterate_batches(train_data, batch_size, shuffle=True,
                                         generator=generator, dev=dev):
                with _autocast(dev, amp):
                    outputs = model(batch)
                    loss = loss_fn(outputs, batch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if after_backward is not None:
                    after_backward(model, batch, outputs)
                if clip_grad_norm is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                n = _batch_len(batch)
                total += loss.detach().float() * n
                count += n
                bar.update(1)
            if scheduler is not None:
                scheduler.step()
            record = {
                "epoch": epoch,
                "train_loss": total.item() / max(count, 1),
                "lr": optimizer.param_groups[0]["lr"],
            }
            if not math.isfinite(record["train_loss"]):
                raise FloatingPointError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; "
                    "lower the learning rate or clip gradients (clip_grad_norm=1.0)"
                )
            if val_data is not None:
                scores = evaluate(model, val_data, loss_fn=loss_fn, target=target,
                                  batch_size=max(batch_size, 256), device=dev, amp=amp)
                record["val_loss"] = scores["loss"]
                if "accuracy" in scores:
                    record["val_accuracy"] = scores["accuracy"]
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()
                             if k in ("train_loss", "val_loss", "val_accuracy")})

            value = record.get(monitor, record["train_loss"])
            improved = value < best_value if minimise else value > best_value
            if improved:
                best_value, since_best, history.best_epoch = value, 0, epoch
                if patience is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    history.stopped_early = True
                    break
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer=optimizer, history=history)
    return history
