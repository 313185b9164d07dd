"""The alignment explorer, driven without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.data.digit_strings import load_digit_strings
from mmcourse.models import CTCRecognizer
from mmcourse.widgets.alignment import alignment_explorer, alignment_view

pytest.importorskip("ipywidgets")


def test_explorer_shows_decoding_alignment_and_errors():
    strings = load_digit_strings(seed=0, sizes={"train": 5, "val": 5, "test": 6})
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, conv_layers=1, rnn=False)
    ex = alignment_explorer(model, strings.test, max_utterances=4)
    state = ex.update(utterance=2, method="beam", beam=3)
    n = int(strings.test.tensors["digit_lengths"][2])
    assert state["reference"] == strings.test.tensors["digits"][2, :n].tolist()
    assert state["boundaries"].shape == (n, 2) and state["errors"].shape == (n, 2)
    np.testing.assert_array_equal(state["true"], strings.test.meta["boundaries"][2])
    assert "reference" in state["html"] and ex.controls["utterance"].max == 3
    with pytest.raises(ValueError, match="greedy"):
        alignment_view(torch.zeros(4, 11).log_softmax(1), [1], method="viterbi")
    with pytest.raises(ValueError, match="load_digit_strings"):
        alignment_explorer(model, strings.test.select(["audio"]))
