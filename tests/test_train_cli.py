"""``mmcourse train CHAPTER``: every chapter's recipe builds and trains; the files it writes load
in a notebook; it runs under torchrun (2 ranks, gloo). Tiny sizes: --limit and --epochs."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import torch
from test_distributed import run_bounded, torchrun

from mmcourse.config import profile
from mmcourse.grading.cli import main as mmcourse_main
from mmcourse.models.output import ModelOutput
from mmcourse.train import History, evaluate, load_checkpoint
from mmcourse.train.cli import RECIPES, chapter_key
from mmcourse.train.objective import default_loss


def build(key: str, limit: int = 32, name: str = "default"):
    recipe, prof = RECIPES[key], profile(name)
    (train, val, test), info = recipe.data(prof, 0, limit)
    args = argparse.Namespace(strategy=None)
    return recipe.model(train, info, prof, 0, args), (train, val, test)


@pytest.mark.parametrize("key", sorted(RECIPES))
def test_every_chapter_recipe_builds_a_trainable_model(key):
    model, (train, val, test) = build(key)
    assert len(train) == len(val) == len(test) == 32
    batch = train[:4]
    out = model(batch)
    assert isinstance(out, ModelOutput)
    loss = default_loss()(out, batch)
    assert torch.isfinite(loss)


def test_chapter_names():
    assert chapter_key("7") == chapter_key("07_cross_modal_retrieval") == "07"
    with pytest.raises(SystemExit, match="no trained model for chapter '04'.*02 .CNN"):
        chapter_key("04")


def test_train_one_process_writes_what_a_notebook_loads(tmp_path, capsys):
    # through the console script's entry point: `mmcourse train 02 ...`
    assert mmcourse_main(["train", "02", "--epochs", "2", "--limit", "64", "--out", str(tmp_path),
                          "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "1 rank(s)" in printed and "wrote" in printed
    metrics = json.loads((tmp_path / "02.json").read_text())
    assert (metrics["world_size"], metrics["global_batch"], metrics["epochs"]) == (1, 64, 2)
    assert metrics["samples"] == {"train": 64, "val": 64, "test": 64}
    history = History.from_dict(metrics["history"])
    assert len(history) == 2 and history.last == metrics["last"]
    model, (_, _, test) = build("02", limit=64)
    loaded = load_checkpoint(tmp_path / "02.pt", model)
    assert loaded["train_loss"] == history["train_loss"]
    assert evaluate(model, test)["loss"] == pytest.approx(metrics["test"]["loss"], abs=1e-6)


def test_grade_is_still_dispatched(capsys):
    with pytest.raises(SystemExit) as exit_info:
        mmcourse_main(["grade", "--help"])
    assert exit_info.value.code == 0 and "--gradebook" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        mmcourse_main(["train", "02", "--epochs", "0"])
    assert exit_info.value.code == 2


def test_train_under_torchrun_two_ranks(tmp_path):
    # chapter 06's late fusion has a parameter no step uses (log_weights): DDP must cope
    rc, out, _ = run_bounded(torchrun(2, "-m", "mmcourse.train", "06", "--epochs", "2", "--limit",
                                      "64", "--out", str(tmp_path), "--quiet"), 120)
    assert rc == 0, out[-3000:]
    assert out.count("mmcourse train 06") == 1 and "2 rank(s) on cpu (gloo)" in out
    metrics = json.loads((tmp_path / "06.json").read_text())
    assert (metrics["world_size"], metrics["backend"], metrics["global_batch"]) == (2, "gloo", 128)
    model, _ = build("06", limit=64)
    history = load_checkpoint(tmp_path / "06.pt", model)
    assert history["val_loss"] == [r["val_loss"] for r in metrics["history"]["records"]]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
