import pytest
import torch

from mmcourse.data.base import ModalDataset, Splits, check_batch
from mmcourse.data.text import Vocab, tokenize


def make(n=6):
    return ModalDataset(
        {"image": torch.arange(n * 4, dtype=torch.float32).reshape(n, 1, 2, 2),
         "label": torch.arange(n) % 3},
        name="toy", meta={"caption": [f"c{i}" for i in range(n)]},
    )


def test_modal_dataset_indexing_subset_select():
    ds = make()
    assert len(ds) == 6 and ds.keys == ("image", "label")
    sample = ds[2]
    assert sample["image"].shape == (1, 2, 2) and sample["label"].item() == 2
    sub = ds.subset([4, 1])
    assert sub.meta["caption"] == ["c4", "c1"]
    assert torch.equal(sub.tensors["label"], torch.tensor([1, 1]))
    assert ds.subset(slice(0, 2)).meta["caption"] == ["c0", "c1"]
    assert ds.select(["label"]).keys == ("label",)
    assert "6 samples" in ds.describe() and "image" in ds.describe()


def test_modal_dataset_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="same number of samples"):
        ModalDataset({"a": torch.zeros(3), "b": torch.zeros(4)})
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ModalDataset({"a": [1, 2, 3]})
    with pytest.raises(ValueError, match="at least one tensor"):
        ModalDataset({})
    with pytest.raises(KeyError, match=r"unknown modality \['audio'\].*\['image', 'label'\]"):
        make().select(["audio"])


def test_splits_iterate_and_describe():
    s = Splits(make(), make(2), make(3), info={"title": "Toy"})
    assert [len(x) for x in s] == [6, 2, 3]
    assert s.describe().startswith("Toy")


def test_check_batch_messages():
    batch = {"image": torch.zeros(4, 1, 28, 28), "text": torch.zeros(4, 7, dtype=torch.long)}
    check_batch(batch, {"image": (1, 28, 28), "text": (None,)}, "model")
    with pytest.raises(KeyError, match="expects modality 'audio'"):
        check_batch(batch, {"audio": (1, 32, 32)}, "model")
    with pytest.raises(ValueError, match=r"should have shape \(batch, 1, 32, 32\), got \(4, 1, 28, 28\)"):
        check_batch(batch, {"image": (1, 32, 32)}, "model")
    with pytest.raises(TypeError, match="batch dict"):
        check_batch(torch.zeros(3), {"image": (1,)}, "model")


def test_vocab_roundtrip_padding_and_unknown_words():
    vocab = Vocab.from_texts(["a red circle", "a blue square"])
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    ids = vocab.encode("a red square", bos=True, eos=True)
    assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "a red square"
    batch, lengths = vocab.encode_batch(["a red circle", "a square"], eos=True)
    assert batch.shape == (2, 4) and lengths.tolist() == [4, 3] and batch[1, 3] == vocab.pad_id
    with pytest.raises(KeyError, match="'green' .* not in the vocabulary"):
        vocab.encode("a green circle")
    assert vocab.encode("a green circle", allow_unknown=True)[1] == vocab.unk_id
    with pytest.raises(ValueError, match="more than length=2"):
        vocab.encode_batch(["a red circle"], length=2)
    with pytest.raises(IndexError, match="outside the vocabulary"):
        vocab.decode([99])
    with pytest.raises(TypeError, match="expects a str"):
        tokenize(3)
