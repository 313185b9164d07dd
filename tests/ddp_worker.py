"""A tiny training run for tests/test_distributed.py, started under torchrun (or alone).

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT MODE

MODE ``train`` writes ``OUT/rank<r>.json`` (history, the train indices each batch held, a
checksum of the final weights) and the checkpoint ``OUT/ckpt.pt``; ``fail`` makes rank 1 raise
in its second epoch; ``hang`` makes rank 1 stop answering (sleep) in its second epoch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from mmcourse.config import seeded
from mmcourse.data.base import ModalDataset
from mmcourse.models.output import ModelOutput
from mmcourse.train import distributed, fit
from mmcourse.train.objective import classification_loss

N_TRAIN, N_VAL, GLOBAL_BATCH, EPOCHS = 64, 20, 16, 3


class TinyNet(nn.Module):
    modalities = ("x",)

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.0), nn.Linear(16, 3))

    def forward(self, batch):
        return ModelOutput(logits=self.net(batch["x"]))


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_TRAIN + N_VAL, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    index = torch.arange(N_TRAIN + N_VAL)
    full = {"x": x, "label": y, "index": index}
    train = ModalDataset({k: v[:N_TRAIN] for k, v in full.items()}, name="train")
    val = ModalDataset({k: v[N_TRAIN:] for k, v in full.items()}, name="val")
    return train, val


def model():
    with seeded(0):
        return TinyNet()


def run(out: Path, mode: str, world: int) -> dict:
    train, val = data()
    seen, calls = [], [0]
    base = classification_loss()

    def loss_fn(outputs, batch):
        if batch["index"][0] < N_TRAIN:  # a training batch (validation indices come after)
            seen.append(batch["index"].tolist())
            calls[0] += 1
            second_epoch = calls[0] > -(-N_TRAIN // world) // (GLOBAL_BATCH // world)
            if second_epoch and distributed.rank() == 1 and mode == "fail":
                raise RuntimeError("rank 1 fails on purpose (test_distributed)")
            if second_epoch and distributed.rank() == 1 and mode == "hang":
                time.sleep(10**6)
        return base(outputs, batch)

    m = model()
    history = fit(m, train, val, epochs=EPOCHS, batch_size=GLOBAL_BATCH // world, lr=1e-2,
                  loss_fn=loss_fn, checkpoint=out / "ckpt.pt", retrain=True, seed=0,
                  progress=True, desc="ddp-worker", device="cpu")
    checksum = sum(p.double().sum().item() for p in m.parameters())
    return {"rank": distributed.rank(), "world": distributed.world_size(),
            "history": history.to_dict(), "seen": seen, "checksum": checksum}


if __name__ == "__main__":
    out, mode = Path(sys.argv[1]), sys.argv[2]
    distributed.setup()
    result = run(out, mode, distributed.world_size())
    (out / f"rank{result['rank']}.json").write_text(json.dumps(result))
