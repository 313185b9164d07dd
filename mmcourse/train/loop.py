"""One training loop for every model in the course: ``fit()`` and ``evaluate()``.

A model takes a batch -- a dict of modality tensors such as ``{"image": (B,1,28,28),
"audio": (B,1,32,32), "label": (B,)}`` -- and returns a ``ModelOutput``. Training minimises the
mean loss over mini-batches with a gradient step per batch,

    θ ← θ − η ∇_θ (1/|B|) Σ_{i∈B} L(f_θ(x_i), y_i),

where ``L`` is the output's own loss, else cross-entropy of its logits against ``batch[target]``
(``mmcourse.train.objective``).

What the loop does for you: device placement (a ``ModalDataset`` that fits moves once), mixed
precision on CUDA, optional ``torch.compile``, gradient-norm clipping, early stopping on a
validation figure (best weights restored), a ``tqdm.auto`` bar, a ``History`` that plots itself,
and checkpoints. Running sums stay on the device during an epoch and the host reads them once
per epoch, so a step has no host synchronisation (the first batch's label check aside).

Under ``torchrun`` the same ``fit()`` trains with ``DistributedDataParallel`` (see
``mmcourse.train.distributed``): each rank trains on its shard, gradients are all-reduced,
figures are summed over the ranks, and only rank 0 prints and writes the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mmcourse.config import device as default_device
from mmcourse.data.base import ModalDataset
from mmcourse.models.output import ModelOutput
from mmcourse.tensors import model_device
from mmcourse.train import distributed
from mmcourse.train.batches import Batch, batch_len, check_modalities, iterate_batches, num_batches, prepare
from mmcourse.train.checkpoints import load_checkpoint, save_checkpoint
from mmcourse.train.history import History
from mmcourse.train.objective import LossFn, check_output, check_targets, default_loss
from mmcourse.train.precision import amp_dtype, autocast, resolve_amp

MONITORS = {"val_loss": True, "val_accuracy": False, "train_loss": True}  # name -> lower is better


@torch.no_grad()
def evaluate(model: nn.Module, data, *, loss_fn: LossFn | None = None, target: str = "label",
             batch_size: int = 512, device=None, amp: bool | None = None,
             return_outputs: bool = False) -> dict:
    """Mean loss (and accuracy, for ``(B, C)`` logits with a ``target``) of ``model`` on ``data``.

    ``accuracy = (1/N) Σ_i [argmax_y s(y, x_i) = y_i]``. With ``return_outputs=True`` the result
    also holds ``"logits"`` (N, C) and ``"targets"`` (N,) on the CPU, for metrics and plots.
    """
    dev = torch.device(device) if device is not None else model_device(model)
    amp = resolve_amp(amp, dev)
    dtype = amp_dtype() if amp else None
    own_loss = loss_fn is not None  # a caller's loss may take other targets: not checked here
    loss_fn = loss_fn or default_loss(target)
    check_modalities(model, data)
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
            with autocast(dev, amp, dtype):
                outputs = model(batch)
                if count == 0:
                    check_output(model, outputs)
                    if not own_loss:
                        check_targets(outputs, batch, target)
                loss = loss_fn(outputs, batch)
            n = batch_len(batch)
            total_loss += loss.detach().float() * n
            count += n
            logits = outputs.logits
            if has_accuracy and logits is not None and logits.dim() == 2 and target in batch:
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


def _check_fit_args(epochs: int, monitor: str | None, patience: int | None, val) -> str:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if monitor is None:
        return "val_loss" if val is not None else "train_loss"
    if monitor not in MONITORS:
        raise ValueError(f"monitor must be one of {list(MONITORS)}, got {monitor!r}")
    if monitor.startswith("val") and val is None:
        raise ValueError(f"monitor={monitor!r} needs validation data (val=...)")
    return monitor


def _rank_device(device, rank_dev: torch.device) -> torch.device:
    """Under torchrun each rank computes on its own device; ``device`` may only name its type."""
    if device is not None and torch.device(device).type != rank_dev.type:
        raise ValueError(f"fit(device={device!r}) under torchrun, but this rank's device is "
                         f"{rank_dev} (set MMCOURSE_DEVICE=cpu for gloo on the CPU)")
    return rank_dev


def _check_ddp_train(train_data, after_backward) -> None:
    if after_backward is not None:
        raise ValueError("fit(after_backward=...) is not supported under torchrun: the hook would "
                         "change each rank's all-reduced gradients by its own batch, and the "
                         "model copies would drift apart")
    if isinstance(train_data, ModalDataset):
        return
    sampler = getattr(train_data, "sampler", None)
    if not isinstance(sampler, torch.utils.data.DistributedSampler):
        raise ValueError(
            f"under torchrun, fit() shards a ModalDataset itself; a {type(train_data).__name__} "
            "must be a DataLoader with a DistributedSampler, or every rank would train on all of it"
        )


def _gathered(scores: dict, dev: torch.device) -> dict:
    """Evaluation figures of the whole validation set from each rank's share of it."""
    n = scores["n"]
    sums = distributed.all_sum(torch.tensor(
        [scores["loss"] * n, scores.get("accuracy", 0.0) * n, n], dtype=torch.float64, device=dev))
    total, correct, count = sums.tolist()
    result = {"loss": total / count, "n": int(count)}
    if "accuracy" in scores:
        result["accuracy"] = round(correct) / count
    return result


def fit(model: nn.Module, train, val=None, *, epochs: int = 10, lr: float = 1e-3,
        batch_size: int = 64, optimizer: torch.optim.Optimizer | None = None,
        weight_decay: float = 0.0, scheduler=None, loss_fn: LossFn | None = None,
        target: str = "label", device=None, amp: bool | None = None,
        clip_grad_norm: float | None = None, patience: int | None = None,
        monitor: str | None = None, checkpoint=None, retrain: bool = False, seed: int | None = 0,
        progress: bool = True, desc: str | None = None, compile: bool = False,
        after_backward: Callable[[nn.Module, Batch, ModelOutput], None] | None = None) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs and return its ``History``.

    ``train``/``val``: a ``ModalDataset`` (kept on the device), a ``DataLoader`` or any iterable
    of batch dicts. The optimizer defaults to AdamW(``lr``, ``weight_decay``); ``scheduler`` (if
    given) is stepped once per epoch. ``loss_fn(outputs, batch)`` defaults to the output's own
    ``loss``, else cross-entropy of its logits against ``batch[target]``.

    ``monitor`` (``"val_loss"`` or ``"val_accuracy"``; default ``"val_loss"`` with ``val``, else
    ``"train_loss"``) picks ``best_epoch``; a figure the evaluation does not give (a captioner has
    no accuracy) is an error. ``patience`` stops when it has not improved for that many epochs
    and restores the best weights. ``clip_grad_norm`` rescales gradients so that
    ``||g||_2 <= clip_grad_norm``. ``amp`` defaults to on for CUDA. ``seed`` seeds the shuffling
    and PyTorch's global RNG (dropout), so a run reproduces.

    ``checkpoint``: a path. If it exists (and ``retrain`` is false) the weights and history are
    loaded and training is skipped; otherwise the trained model is saved there.

    ``compile=True`` runs the training forward pass through ``torch.compile(model)``; evaluation,
    the checkpoint and the returned weights are the plain ``model``'s, which shares its parameters.

    ``after_backward(model, batch, outputs)``, if given, is called after every backward pass and
    before clipping and the optimizer step: a hook to rescale or perturb gradients (e.g.
    ``mmcourse.robustness.OGMGE``, which reads the per-modality scores from ``outputs``).

    Under ``torchrun`` (see ``mmcourse.train.distributed``) the model trains wrapped in
    ``DistributedDataParallel`` on this rank's device: ``batch_size`` is *per rank* (the global
    batch is ``batch_size × WORLD_SIZE``), a ``ModalDataset`` is sharded per rank as
    ``DistributedSampler`` shards (another ``train`` must be a ``DataLoader`` with a
    ``DistributedSampler``), the recorded figures are those of the whole data (summed over the
    ranks), only rank 0 shows progress and writes the checkpoint, and every rank returns the
    same ``History``. ``after_backward`` is refused there.
    """
    monitor = _check_fit_args(epochs, monitor, patience, val)
    rank_dev = distributed.setup()  # None unless started by torchrun
    ddp = rank_dev is not None
    if ddp:
        dev = _rank_device(device, rank_dev)
    else:
        dev = torch.device(device) if device is not None else default_device()
    rank, world = distributed.rank(), distributed.world_size()
    model.to(dev)
    found = checkpoint is not None and Path(checkpoint).exists() and not retrain
    if distributed.broadcast_int(found, dev):  # rank 0 decides, so that no rank trains alone
        history = load_checkpoint(checkpoint, model)
        if progress and rank == 0:
            print(f"loaded trained weights from {checkpoint} ({len(history)} epochs); "
                  "pass retrain=True to train again")
        return history

    amp = resolve_amp(amp, dev)
    own_loss = loss_fn is not None  # a caller's loss may take other targets: not checked here
    loss_fn = loss_fn or default_loss(target)
    check_modalities(model, train)
    if val is not None:
        check_modalities(model, val)
    if ddp and seed is None:  # the ranks must agree on the shuffling order
        seed = distributed.broadcast_int(torch.randint(2**31, ()).item(), dev)
    if seed is not None:
        torch.manual_seed(seed + rank)  # dropout differs between ranks; rank 0 as one process
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    train_data = prepare(train, dev)
    val_data = prepare(val, dev) if val is not None else None
    if ddp:
        _check_ddp_train(train_data, after_backward)
        if isinstance(val_data, ModalDataset):
            if len(val_data) < world:
                raise ValueError(f"val has {len(val_data)} samples, fewer than the {world} ranks")
            val_data = val_data.subset(slice(rank, None, world))
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    dtype = amp_dtype() if amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    forward = model
    if ddp:
        # static_graph: the same parameters take part in every step, some maybe in none
        # (LateFusion's log_weights unless combine="learned"), which plain DDP refuses
        forward = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None, static_graph=True)
    forward = torch.compile(forward) if compile else forward

    steps = num_batches(train_data, batch_size)
    if ddp and isinstance(train_data, ModalDataset):
        steps = math.ceil(-(-len(train_data) // world) / batch_size)
    history = History(monitor=monitor)
    minimise = MONITORS[monitor]
    best_value, best_state, since_best = math.inf if minimise else -math.inf, None, 0

    from tqdm.auto import tqdm

    bar = tqdm(total=steps * epochs if steps else None, desc=desc or type(model).__name__,
               disable=not progress or rank != 0, unit="batch", leave=True, mininterval=0.5)
    first = True
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            model.train()
            total = torch.zeros((), device=dev)
            count = 0
            mine = None
            if ddp and isinstance(train_data, ModalDataset):  # this epoch's order, then my share
                order = torch.randperm(len(train_data), generator=generator)
                mine = distributed.shard(order, rank, world)
            elif ddp:
                train_data.sampler.set_epoch(epoch)
            for batch in iterate_batches(train_data, batch_size, shuffle=True,
                                         generator=generator, dev=dev, indices=mine):
                with autocast(dev, amp, dtype):
                    outputs = forward(batch)
                    if first:
                        check_output(model, outputs)
                        if not own_loss:
                            check_targets(outputs, batch, target)
                        first = False
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
                n = batch_len(batch)
                total += loss.detach().float() * n
                count += n
                bar.update(1)
            if scheduler is not None:
                scheduler.step()
            if ddp:
                total, count = distributed.all_sum(
                    torch.stack([total.double(), torch.tensor(count, dtype=torch.float64, device=dev)])
                ).tolist()
            else:
                total = total.item()
            record = {"epoch": epoch, "train_loss": total / max(count, 1),
                      "lr": optimizer.param_groups[0]["lr"]}
            if not math.isfinite(record["train_loss"]):
                raise FloatingPointError(
                    f"training loss became {record['train_loss']} at epoch {epoch}; "
                    "lower the learning rate or clip gradients (clip_grad_norm=1.0)"
                )
            if val_data is not None:
                scores = evaluate(model, val_data, loss_fn=loss_fn, target=target,
                                  batch_size=max(batch_size, 256), device=dev, amp=amp)
                if ddp:
                    scores = _gathered(scores, dev)
                record["val_loss"] = scores["loss"]
                if "accuracy" in scores:
                    record["val_accuracy"] = scores["accuracy"]
            record["seconds"] = time.perf_counter() - start
            history.records.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items()
                             if k in ("train_loss", "val_loss", "val_accuracy")})
            if monitor not in record:
                raise ValueError(
                    f"fit(monitor={monitor!r}): evaluating {type(model).__name__} gives "
                    f"{sorted(k for k in record if k.startswith('val'))}, not {monitor!r}; "
                    "monitor 'val_loss' instead"
                )
            value = record[monitor]
            if value < best_value if minimise else value > best_value:
                best_value, since_best, history.best_epoch = value, 0, epoch
                if patience is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if patience is not None and since_best >= patience:
                    history.stopped_early = True
                    break
    except RuntimeError as err:
        if ddp and "timed out" in str(err).lower():
            raise RuntimeError(
                f"rank {rank}: another rank did not answer within {distributed.timeout_s():.0f} s "
                f"({distributed.TIMEOUT_ENV}); it hangs or died. Stopping this rank, so that "
                "torchrun stops the job") from err
        raise
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    if checkpoint is not None:
        if rank == 0:
            save_checkpoint(checkpoint, model, optimizer=optimizer, history=history)
        distributed.barrier()  # the file exists on return, on every rank
    return history


__all__ = ["evaluate", "fit"]
