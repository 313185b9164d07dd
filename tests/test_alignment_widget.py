"""The alignment explorer, driven without a browser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmcourse.alignment import forced_align, voiced_boundaries, voiced_frames
from mmcourse.data.digit_strings import BLANK, load_digit_strings
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


def test_explorer_with_voicing_draws_the_chapters_boundaries():
    """Given the chapter's voicing settings, the lines are the spikes-plus-voicing boundaries."""
    strings = load_digit_strings(seed=0, sizes={"train": 5, "val": 5, "test": 6})
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, conv_layers=1, rnn=False)
    threshold = float(strings.test.tensors["audio"].min()) + 0.5
    plain = alignment_explorer(model, strings.test, max_utterances=4).update(utterance=1)
    state = alignment_explorer(model, strings.test, max_utterances=4,
                               voicing=(threshold, 1)).update(utterance=1)
    n, frames = int(strings.test.tensors["digit_lengths"][1]), int(strings.test.tensors["audio_lengths"][1])
    with torch.no_grad():
        lp = model(strings.test.tensors).logits[1, :frames]
    spans = forced_align(lp, strings.test.tensors["digits"][1, :n], blank=BLANK).spans
    voiced = voiced_frames(strings.test.tensors["audio"][1, :, :frames], threshold)
    expected = voiced_boundaries(spans, voiced, 1)
    np.testing.assert_array_equal(state["boundaries"], expected.numpy())
    np.testing.assert_array_equal(state["spans"], plain["spans"])
