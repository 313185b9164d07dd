"""The CTC recogniser: the model contract, clear errors, and that it learns (slow)."""

from __future__ import annotations

import pytest
import torch

from mmcourse.alignment import boundary_errors, forced_align, greedy_decode, voiced_boundaries, voiced_frames
from mmcourse.data.digit_strings import BLANK, load_digit_strings
from mmcourse.metrics import digit_error_rate
from mmcourse.models import CTCRecognizer, ModelOutput
from mmcourse.train import fit


def _batch(b=3, t=20):
    return {"audio": torch.randn(b, 32, t), "audio_lengths": torch.tensor([t, t - 5, 8][:b]),
            "digits": torch.tensor([[1, 2, -1], [3, 3, 4], [5, -1, -1]][:b]),
            "digit_lengths": torch.tensor([2, 3, 1][:b])}


@pytest.mark.parametrize("rnn", [False, True])
def test_output_contract_and_loss_equals_torch_ctc(rnn):
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, hidden=8, conv_layers=2, rnn=rnn).eval()
    batch = _batch()
    out = model(batch)
    assert isinstance(out, ModelOutput) and out.logits.shape == (3, 20, 11)
    torch.testing.assert_close(out.logits.exp().sum(-1), torch.ones(3, 20))
    ref = torch.nn.functional.ctc_loss(out.logits.transpose(0, 1), batch["digits"].clamp(min=0),
                                       batch["audio_lengths"], batch["digit_lengths"], blank=BLANK)
    torch.testing.assert_close(out.loss, ref)
    no_targets = model({k: batch[k] for k in ("audio", "audio_lengths")})
    assert no_targets.loss is None


def test_padding_does_not_change_the_posteriors_of_a_shorter_utterance():
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, hidden=8, conv_layers=2, rnn=True).eval()
    batch = _batch()
    alone = model({"audio": batch["audio"][2:, :, :8], "audio_lengths": torch.tensor([8])}).logits
    together = model(batch).logits[2:, :8]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-4)


def test_one_posterior_per_input_frame_centred_on_it():
    # alignments are compared with the true boundaries in the data's own 30 ms frames: the encoder
    # must not downsample or shift time. Output frame t depends on input frames t-8..t+8 only.
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, conv_layers=4, rnn=False).eval()
    x = torch.randn(4, 32, 40, requires_grad=True)            # four inputs: a ReLU may hide a frame
    out = model({"audio": x, "audio_lengths": torch.tensor([40] * 4)}).logits
    assert out.shape[1] == 40
    for t in (10, 20, 30):
        (grad,) = torch.autograd.grad(out[:, t].sum(), x, retain_graph=True)
        touched = torch.nonzero(grad.abs().sum((0, 1))).flatten()          # input frames it reads
        assert touched.tolist() == list(range(t - 8, t + 9))


def test_augment_perturbs_training_batches_only():
    torch.manual_seed(0)
    kwargs = {"channels": 8, "conv_layers": 2, "rnn": False, "norm": False, "dropout": 0.0}
    plain, augmented = CTCRecognizer(**kwargs), CTCRecognizer(**kwargs, augment=(2, 4, 5))
    augmented.load_state_dict(plain.state_dict())
    batch = _batch()
    torch.testing.assert_close(augmented.eval()(batch).logits, plain.eval()(batch).logits)   # off in eval
    assert torch.equal(plain.train()(batch).logits, plain.eval()(batch).logits)     # nothing else random
    assert not torch.equal(augmented.train()(batch).logits, plain.train()(batch).logits)
    with pytest.raises(ValueError, match="augment"):
        CTCRecognizer(augment=(40, 0, 0))


def test_tilt_changes_the_voice_of_training_batches_only_and_keeps_the_silence():
    torch.manual_seed(0)
    kwargs = {"channels": 8, "conv_layers": 2, "rnn": False, "norm": False, "dropout": 0.0}
    plain, tilted = CTCRecognizer(**kwargs), CTCRecognizer(**kwargs, tilt=0.5)
    tilted.load_state_dict(plain.state_dict())
    batch = _batch()
    batch["audio"][:, :, :3] = batch["audio"].min()                     # three frames of silence
    torch.testing.assert_close(tilted.eval()(batch).logits, plain.eval()(batch).logits)     # off in eval
    assert not torch.equal(tilted.train()(batch).logits, plain.train()(batch).logits)
    x = batch["audio"]
    y = tilted._tilt(x)
    floor = x.amin(dim=(1, 2), keepdim=True)
    assert torch.equal(y[:, :, :3], x[:, :, :3]) and bool((y >= floor).all())   # silence stays silent
    gain = (y - x)[x > floor + 1.0].reshape(-1)
    assert gain.abs().max() <= 0.5 + 1e-6 and gain.abs().max() > 0.01
    middle = tilted._tilt(torch.full((1, 3, 4), 2.0).index_fill(2, torch.tensor([0]), -1.0))
    torch.testing.assert_close(middle[0, 1, 1:], torch.full((3,), 2.0))      # the centre band: no gain
    with pytest.raises(ValueError, match="tilt"):
        CTCRecognizer(tilt=-1.0)


def test_cmvn_ignores_an_utterances_level_and_scale_per_band_and_its_padding():
    torch.manual_seed(0)
    model = CTCRecognizer(channels=8, conv_layers=2, rnn=False, cmvn=True).eval()
    batch = _batch()
    scale, shift = torch.rand(3, 32, 1) + 0.5, torch.randn(3, 32, 1) * 3       # per utterance, per band
    louder = dict(batch, audio=batch["audio"] * scale + shift)
    torch.testing.assert_close(model(louder).logits[2, :8], model(batch).logits[2, :8], atol=1e-4, rtol=1e-4)
    alone = model({"audio": batch["audio"][2:, :, :8], "audio_lengths": torch.tensor([8])}).logits
    torch.testing.assert_close(alone, model(batch).logits[2:, :8], atol=1e-5, rtol=1e-4)
    plain = CTCRecognizer(channels=8, conv_layers=2, rnn=False).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(louder).logits, plain(batch).logits, atol=1e-3)


def test_bad_batches_are_named():
    model = CTCRecognizer(channels=8, conv_layers=1, rnn=False)
    with pytest.raises(KeyError, match="audio_lengths"):
        model({"audio": torch.randn(1, 32, 5)})
    with pytest.raises(ValueError, match=r"\(B, 32, T\)"):
        model({"audio": torch.randn(1, 16, 5), "audio_lengths": torch.tensor([5])})


@pytest.mark.slow
def test_recogniser_learns_digit_strings_and_locates_each_digit():
    strings = load_digit_strings(seed=0, sizes={"train": 800, "val": 50, "test": 100})
    torch.manual_seed(0)
    model = CTCRecognizer(channels=64, conv_layers=4, norm=True)
    fit(model, strings.train, epochs=10, lr=3e-3, batch_size=16, progress=False)
    model.eval()
    with torch.no_grad():
        lp = model(strings.test.tensors).logits
    lengths = strings.test.tensors["audio_lengths"]
    hyps = greedy_decode(lp, lengths, blank=BLANK)
    der = digit_error_rate(strings.test.meta["text"], hyps)
    assert der < 0.35, der                # measured 0.13 on 400 strings; untrained: ~1.0
    inside = []                              # forced alignment puts each digit's spike inside it
    for i in range(len(strings.test)):
        n = int(strings.test.tensors["digit_lengths"][i])
        a = forced_align(lp[i, : int(lengths[i])], strings.test.tensors["digits"][i, :n], blank=BLANK)
        true = torch.as_tensor(strings.test.meta["boundaries"][i])
        inside.append((a.spans[:, 0] >= true[:, 0]) & (a.spans[:, 0] < true[:, 1]))
    assert torch.cat(inside).float().mean() > 0.6
    # the spikes as onsets, the voicing as ends: most boundaries within 2 frames of the truth
    silence = float(strings.train.tensors["audio"].min()) + 0.01
    errors = []
    for i in range(len(strings.test)):
        n, t = int(strings.test.tensors["digit_lengths"][i]), int(lengths[i])
        a = forced_align(lp[i, :t], strings.test.tensors["digits"][i, :n], blank=BLANK)
        bounds = voiced_boundaries(a.spans, voiced_frames(strings.test.tensors["audio"][i, :, :t], silence))
        errors.append(boundary_errors(bounds, strings.test.meta["boundaries"][i]))
    errors = torch.cat(errors).float()
    assert errors.median() <= 2 and (errors <= 2).float().mean() > 0.6, errors.median()
