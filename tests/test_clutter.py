"""The ``clutter`` dataset: translated, cluttered digits generated from the embedded ones."""

from __future__ import annotations

import pytest
import torch

from attnsearch.datasets import DatasetError, dataset_names, load_dataset
from attnsearch.datasets._core import CLUTTER_DIGIT, CLUTTER_VARIANTS, _resize, _split_groups
from attnsearch.datasets._generated import _clutter_source, _digits_tensors, _make_clutter


@pytest.fixture(scope="module")
def clutter():
    return load_dataset("clutter", seed=0)


def test_shapes_and_names(clutter):
    assert "clutter" in dataset_names() and "digits" in dataset_names()
    assert clutter.name == "clutter" and clutter.input_shape == (1, 32, 32)
    assert clutter.num_classes == 10 and clutter.train_x.dtype == torch.uint8
    n_digits = len(_digits_tensors()[1])
    assert len(clutter.train_x) + len(clutter.val_x) == n_digits * CLUTTER_VARIANTS
    assert len(clutter.val_x) > 1000  # a larger validation split than digits' 359
    small = load_dataset("clutter:24", seed=0, limit=50)
    assert small.input_shape == (1, 24, 24) and len(small.train_x) == 50


def test_deterministic_from_seed(clutter):
    again = load_dataset("clutter", seed=0)
    assert torch.equal(again.train_x, clutter.train_x) and torch.equal(again.val_y, clutter.val_y)
    other = load_dataset("clutter", seed=1)
    assert not torch.equal(other.train_x[:100], clutter.train_x[:100])


def test_classes_balanced(clutter):
    for y in (clutter.train_y, clutter.val_y):
        counts = torch.bincount(y, minlength=10).float()
        assert counts.min() >= 0.9 * counts.mean() and counts.max() <= 1.1 * counts.mean()


def test_digit_is_on_the_canvas_with_its_label():
    images, labels, groups, positions = _make_clutter(32, seed=5)
    digits, digit_labels = _digits_tensors()
    big = _resize(digits, CLUTTER_DIGIT)[:, 0]
    assert torch.equal(labels, digit_labels[groups])
    for i in (0, 1, 777, len(images) - 1):
        r, c = positions[i].tolist()
        assert 0 <= r <= 32 - CLUTTER_DIGIT and 0 <= c <= 32 - CLUTTER_DIGIT
        box = images[i, 0, r : r + CLUTTER_DIGIT, c : c + CLUTTER_DIGIT]
        assert torch.all(box >= big[groups[i]])  # the digit's strokes are all there
        assert (box == big[groups[i]]).float().mean() > 0.5  # and clutter does not hide it
    # distractors: pixels outside the digit's box are lit in most images
    mask = torch.ones(len(images), 32, 32, dtype=torch.bool)
    for i, (r, c) in enumerate(positions.tolist()):
        mask[i, r : r + CLUTTER_DIGIT, c : c + CLUTTER_DIGIT] = False
    lit = ((images[:, 0] > 0) & mask).flatten(1).any(1).float().mean()
    assert lit > 0.9


def test_split_keeps_a_digit_on_one_side():
    source = _clutter_source(32, seed=0)
    train, val = _split_groups(source, 0.2, 0, None)
    g = source.groups
    assert not set(g[train].tolist()) & set(g[val].tolist())
    train_lim, val_lim = _split_groups(source, 0.2, 0, 100)
    assert len(train_lim) == 100 and val_lim == val and set(train_lim) <= set(train)


@pytest.mark.parametrize("spec", ["clutter:8", "clutter:x", "clutter:500"])
def test_bad_size(spec):
    with pytest.raises(DatasetError, match="clutter:SIZE"):
        load_dataset(spec)
