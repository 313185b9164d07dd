"""fit() under torchrun with DistributedDataParallel, on the CPU with gloo and 2 processes.

The 2-rank run (tests/ddp_worker.py, per-rank batch 8) is compared with the plain one-process
fit() of the same model, seed and global batch 16: the ranks see exactly the one-process run's
global batches, so the figures agree to float rounding (tolerance TOL). Every test that starts
processes bounds them with a timeout and kills their whole process group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from mmcourse.train import distributed, evaluate, fit, load_checkpoint
from mmcourse.train.batches import iterate_batches

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
import ddp_worker as worker  # noqa: E402

TOL = 1e-5  # |loss(2 ranks) - loss(1 process)| per epoch; measured here: about 1.5e-7


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    path = env.get("PYTHONPATH")
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{path}" if path else str(ROOT), OMP_NUM_THREADS="1",
               MMCOURSE_DEVICE="cpu", **extra)
    return env


def run_bounded(args: list[str], timeout: float, **env) -> tuple[int, str, float]:
    """Run ``args`` in a new session; kill the whole session if it outlives ``timeout``."""
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish within {timeout} s (it hangs):\n{out[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, out, time.monotonic() - start


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", *args]


# -- sharding: DistributedSampler's indices ------------------------------------------------------

@pytest.mark.parametrize("n", [1, 10, 11, 64])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_gives_distributed_samplers_indices(n, world):
    from torch.utils.data import DistributedSampler

    for epoch in range(3):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(7 + epoch))
        shards = [distributed.shard(order, r, world) for r in range(world)]
        for r, mine in enumerate(shards):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True, seed=7)
            sampler.set_epoch(epoch)
            assert mine.tolist() == list(sampler)
        seen = torch.cat(shards)
        assert sorted(set(seen.tolist())) == list(range(n))      # every sample in every epoch
        assert len(seen) == -(-n // world) * world                 # padded by < world samples
        assert {len(s) for s in shards} == {-(-n // world)}        # equal batches on every rank


def test_shard_bad_input():
    with pytest.raises(ValueError, match="rank"):
        distributed.shard(torch.arange(4), 2, 2)
    with pytest.raises(ValueError, match="empty"):
        distributed.shard(torch.arange(0), 0, 2)


def test_iterate_batches_visits_given_indices():
    train, _ = worker.data()
    idx = torch.tensor([5, 3, 9])
    batches = list(iterate_batches(train, 2, indices=idx))
    assert [b["index"].tolist() for b in batches] == [[5, 3], [9]]
    with pytest.raises(TypeError, match="ModalDataset"):
        list(iterate_batches([{"x": torch.zeros(1)}], 2, indices=idx))


# -- one process: nothing changes ----------------------------------------------------------------

def test_one_process_starts_no_process_group(monkeypatch, tmp_path):
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed.setup() is None and not distributed.launched()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    result = worker.run(tmp_path, "train", 1)
    assert not dist.is_initialized() and result["world"] == 1
    # a one-process run is reproducible bit for bit, and the shuffling order is today's
    again = worker.run(tmp_path, "train", 1)
    assert again["history"]["records"][-1]["train_loss"] == result["history"]["records"][-1]["train_loss"]
    order = torch.randperm(worker.N_TRAIN, generator=torch.Generator().manual_seed(0))
    assert result["seen"][0] == order[:worker.GLOBAL_BATCH].tolist()


def test_setup_errors(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="RANK is not.*torchrun"):
        distributed.setup()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "1")
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="MMCOURSE_DDP_TIMEOUT"):
        distributed.setup()
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "0")
    with pytest.raises(ValueError, match="> 0"):
        distributed.setup()
    assert not dist.is_initialized()


@pytest.fixture
def one_rank_group(monkeypatch):
    """A real process group of one rank (gloo), in this process, torn down afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in dict(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(port), MMCOURSE_DEVICE="cpu").items():
        monkeypatch.setenv(key, value)
    assert distributed.setup() == torch.device("cpu")
    yield
    distributed.cleanup()


def test_one_rank_ddp_equals_plain_fit(one_rank_group, tmp_path, monkeypatch):
    ddp = worker.run(tmp_path, "train", 1)
    assert distributed.active() and distributed.world_size() == 1
    distributed.cleanup()
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key)
    plain = worker.run(tmp_path, "train", 1)
    assert ddp["seen"] == plain["seen"]
    for a, b in zip(ddp["history"]["records"], plain["history"]["records"]):
        assert abs(a["train_loss"] - b["train_loss"]) <= TOL and a["val_accuracy"] == b["val_accuracy"]


def test_ddp_refuses_what_it_cannot_shard(one_rank_group):
    train, _ = worker.data()
    with pytest.raises(ValueError, match="after_backward"):
        fit(worker.model(), train, epochs=1, progress=False, after_backward=lambda *a: None)
    loader = torch.utils.data.DataLoader(train, batch_size=8)
    with pytest.raises(ValueError, match="DistributedSampler"):
        fit(worker.model(), loader, epochs=1, progress=False)
    with pytest.raises(ValueError, match="this rank's device"):
        fit(worker.model(), train, epochs=1, progress=False, device="meta")


# -- two processes under torchrun ------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    logs = out / "logs"
    rc, text, _ = run_bounded(torchrun(2, f"--log-dir={logs}", "--redirects=3",
                                       str(TESTS / "ddp_worker.py"), str(out), "train"), 120)
    assert rc == 0, text[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    (out / "one").mkdir()
    reference = worker.run(out / "one", "train", 1)  # plain fit(), this process, global batch 16
    return {"out": out, "logs": logs, "ranks": ranks, "one": reference}


def test_two_ranks_follow_the_one_process_loss_trajectory(two_ranks):
    ddp, one = two_ranks["ranks"][0]["history"]["records"], two_ranks["one"]["history"]["records"]
    assert len(ddp) == len(one) == worker.EPOCHS
    diff = max(abs(a[k] - b[k]) for a, b in zip(ddp, one) for k in ("train_loss", "val_loss"))
    print(f"max |loss(2 ranks) - loss(1 process)| over {len(ddp)} epochs: {diff:.2e}")
    assert diff <= TOL
    assert [r["val_accuracy"] for r in ddp] == [r["val_accuracy"] for r in one]


def test_two_ranks_stay_identical(two_ranks):
    r0, r1 = two_ranks["ranks"]
    assert (r0["world"], r1["world"]) == (2, 2)
    assert r0["checksum"] == r1["checksum"]               # the model copies never drift apart
    assert r0["history"]["records"] == [{**r, "seconds": a["seconds"]} for r, a in
                                        zip(r1["history"]["records"], r0["history"]["records"])]


def test_every_sample_once_per_epoch(two_ranks):
    r0, r1 = (r["seen"] for r in two_ranks["ranks"])
    one = two_ranks["one"]["seen"]
    per_epoch = -(-worker.N_TRAIN // 2) // (worker.GLOBAL_BATCH // 2)
    assert len(r0) == len(r1) == per_epoch * worker.EPOCHS
    for e in range(worker.EPOCHS):
        mine = [b for r in (r0, r1) for b in r[e * per_epoch:(e + 1) * per_epoch]]
        assert sorted(i for b in mine for i in b) == list(range(worker.N_TRAIN))
    # each global step (rank 0's batch + rank 1's) is the one-process run's batch of that step
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(b) for b in one]
    assert r0 != one[:len(r0)] and r0[:per_epoch] != r0[per_epoch:2 * per_epoch]  # reshuffled


def test_ddp_checkpoint_loads_in_one_process(two_ranks):
    model = worker.model()
    history = load_checkpoint(two_ranks["out"] / "ckpt.pt", model)
    r0 = two_ranks["ranks"][0]
    assert sum(p.double().sum().item() for p in model.parameters()) == r0["checksum"]
    assert [r["train_loss"] for r in history.records] == [r["train_loss"] for r in r0["history"]["records"]]
    _, val = worker.data()
    assert abs(evaluate(model, val)["loss"] - history.last["val_loss"]) <= TOL


def test_only_rank0_prints_progress(two_ranks):
    logs = {int(p.parent.name): p.read_text() for p in two_ranks["logs"].rglob("stderr.log")}
    assert set(logs) == {0, 1}
    assert "ddp-worker" in logs[0] and "ddp-worker" not in logs[1]


def test_a_failing_rank_takes_the_job_down(tmp_path):
    rc, out, seconds = run_bounded(torchrun(2, str(TESTS / "ddp_worker.py"), str(tmp_path), "fail"),
                                   90, MMCOURSE_DDP_TIMEOUT="300")
    assert rc != 0
    assert "rank 1 fails on purpose" in out and "ChildFailedError" in out
    assert seconds < 90 and not list(tmp_path.glob("rank*.json"))


def test_a_hanging_rank_times_out_and_takes_the_job_down(tmp_path):
    rc, out, seconds = run_bounded(torchrun(2, str(TESTS / "ddp_worker.py"), str(tmp_path), "hang"),
                                   90, MMCOURSE_DDP_TIMEOUT="5")
    assert rc != 0
    assert "rank 0: another rank did not answer within 5 s" in out and "ChildFailedError" in out
    assert not list(tmp_path.glob("rank*.json"))


@pytest.mark.gpu
def test_nccl_ranks_on_every_gpu(tmp_path):
    """One rank per GPU over nccl (run by scripts/gpu_check.sh on a machine with CUDA)."""
    gpus = torch.cuda.device_count()
    rc, out, _ = run_bounded(torchrun(gpus, "-m", "mmcourse.train", "02", "--epochs", "2", "--limit",
                                      "1024", "--out", str(tmp_path), "--quiet"), 240,
                             MMCOURSE_DEVICE="cuda")
    assert rc == 0, out[-3000:]
    metrics = json.loads((tmp_path / "02.json").read_text())
    assert (metrics["backend"], metrics["world_size"], metrics["device"]) == ("nccl", gpus, "cuda:0")
    print(f"nccl, {gpus} GPU(s): {metrics['last']}")
