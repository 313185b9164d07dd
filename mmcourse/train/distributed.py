"""Data-parallel training with PyTorch's own engine: ``torch.distributed`` and
``DistributedDataParallel`` (DDP), started by ``torchrun``.

``torchrun --nproc_per_node N script.py`` starts N copies of the script (the *ranks*) and tells
each one who it is through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``). Each rank holds a full copy of the model and trains on its own
shard of the data; after every backward pass DDP all-reduces the gradients, so that every rank
steps with the mean gradient over the *global* batch (per-rank batch × N),

    g = (1/N) Σ_r g_r,     g_r = ∇_θ (1/b) Σ_{i∈B_r} L(f_θ(x_i), y_i),

and the copies stay identical. Without those variables nothing here does anything: one
process trains exactly as before.

* ``setup()`` joins the process group once (``nccl`` on CUDA, ``gloo`` on the CPU), with a
  timeout: a collective that waits longer than ``MMCOURSE_DDP_TIMEOUT`` seconds (default 600)
  for a rank that hangs raises, and ``torchrun`` then stops the whole job.
* ``shard()`` is ``DistributedSampler``'s split of one epoch's order: pad by wrapping around to
  a multiple of N, rank r takes positions r, r + N, r + 2N, ...; every sample is seen once per
  epoch (the ≤ N − 1 padded ones twice) and every rank gets the same number of batches.
* ``all_sum()`` adds running figures over the ranks, so that the recorded losses and
  accuracies are those of the whole dataset, not of one shard.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils import _pytree as pytree

from mmcourse.config import device as default_device
from mmcourse.models.output import ModelOutput

# DDP finds the tensors of a model's output with torch's pytree: tell it what a ModelOutput holds
# (else, under static_graph, the first step's gradients are not all-reduced)
if ModelOutput not in pytree.SUPPORTED_NODES:
    pytree.register_dataclass(ModelOutput)

TIMEOUT_ENV = "MMCOURSE_DDP_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


def launched() -> bool:
    """True when this process was started by ``torchrun`` (``WORLD_SIZE`` is set)."""
    return "WORLD_SIZE" in os.environ


def active() -> bool:
    """True when a process group is up (more than one process may take part)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 prints progress and writes files; the other ranks stay quiet."""
    return rank() == 0


def timeout_s() -> float:
    """How long a collective waits for the other ranks: ``MMCOURSE_DDP_TIMEOUT`` (seconds)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be > 0 seconds, got {raw!r}")
    return seconds


def setup(backend: str | None = None) -> torch.device | None:
    """Join the ``torchrun`` process group if this process was launched by it; return this
    rank's device (``cuda:LOCAL_RANK`` with ``nccl``, else the CPU), or ``None`` when not
    launched. Safe to call more than once."""
    if not launched():
        return None
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise RuntimeError(f"WORLD_SIZE is set but {key} is not: start the job with torchrun "
                               "(e.g. torchrun --nproc_per_node 2 -m mmcourse.train CHAPTER)")
    local = int(os.environ["LOCAL_RANK"])
    timeout = timedelta(seconds=timeout_s())
    if backend is None:  # MMCOURSE_DEVICE=cpu picks gloo on a GPU machine too
        backend = "nccl" if default_device().type == "cuda" else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise RuntimeError("backend 'nccl' needs CUDA GPUs; use 'gloo' on the CPU")
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs "
                               "here: --nproc_per_node must not exceed the GPUs per node")
        torch.cuda.set_device(local)
    if not active():
        dist.init_process_group(backend=backend, timeout=timeout)
        atexit.register(cleanup)
    return torch.device("cuda", local) if backend == "nccl" else torch.device("cpu")


def cleanup() -> None:
    """Leave the process group (registered to run at exit by ``setup``)."""
    if active():
        dist.destroy_process_group()


def shard(order: Tensor, rank: int, world: int) -> Tensor:
    """This rank's share of one epoch's sample order, as ``DistributedSampler`` splits it:
    ``order`` padded by wrapping around to ``ceil(n / world) · world`` entries, then every
    ``world``-th entry from position ``rank``."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank {rank}, world {world}")
    n = len(order)
    if n == 0:
        raise ValueError("cannot shard an empty dataset")
    total = -(-n // world) * world
    if total > n:
        order = torch.cat([order, order.repeat(-(-(total - n) // n))[: total - n]])
    return order[rank:total:world]


def all_sum(values: Tensor) -> Tensor:
    """The element-wise sum of ``values`` over all ranks (``values`` itself with one process)."""
    if active():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_int(value: int, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank (so that all ranks take the same branch or seed)."""
    if not active():
        return value
    buf = torch.tensor([int(value)], dtype=torch.long, device=device)
    dist.broadcast(buf, src=0)
    return int(buf.item())


def barrier() -> None:
    if active():
        dist.barrier()


__all__ = ["active", "all_sum", "barrier", "broadcast_int", "cleanup", "is_main", "launched",
           "rank", "setup", "shard", "timeout_s", "world_size"]
