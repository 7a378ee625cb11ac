"""The dataset type and what every source shares: the split, resizing, channel statistics."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from attnsearch.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
FOLDER_RESOLUTION = 32  # folder images differ in size, so they need one; CIFAR's size
SYNTHETIC_PER_CLASS = 200  # 2000 images for the default 10 classes: seconds per epoch on CPU
SYNTHETIC_SIZE = 16  # native side of the synthetic images
CLUTTER_SIZE = 32  # canvas side: stage 4 of a proxy ResNet still sees 4×4, not 1×1
CLUTTER_DIGIT = 16  # the 8×8 digits are enlarged ×2 before placing
CLUTTER_PIECES = 4  # distractor fragments per image (cluttered MNIST: 4 on 60×60 at 28²)
CLUTTER_PIECE = 8  # side of a fragment, in canvas pixels
CLUTTER_VARIANTS = 4  # images per source digit: 7188 in all, ~1440 for validation
_RESIZE_CHUNK = 4096  # images resized at a time, bounding the float copy to ~200 MB at 64²


class DatasetError(InputError):
    """A dataset cannot be loaded; the message is one line that names the problem."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/validation split held as tensors, ready to move to a device.

    Attributes:
        name: the spec that reloads it (``"digits"``, ``"cifar10"``, ``"folder:/abs/path"``).
        train_x: uint8 ``(N, C, H, W)`` training images at the requested resolution.
        train_y: int64 ``(N,)`` class indices in ``[0, num_classes)``.
        val_x: uint8 ``(M, C, H, W)`` validation images (from the training data).
        val_y: int64 ``(M,)``.
        num_classes: number of classes (every class occurs in both splits).
        mean: per-channel mean of ``train_x / 255``.
        std: per-channel standard deviation of ``train_x / 255`` (1.0 for a constant
            channel, so that normalising never divides by zero).
        classes: class names, indexed by label.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def normalize(self, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Convert a uint8 batch to ``(x / 255 - mean) / std`` in ``dtype`` on ``x``'s device.

        Args:
            x: uint8 ``(B, C, H, W)`` images, e.g. a slice of :attr:`train_x`.
            dtype: the floating dtype of the result.

        Returns:
            The normalised batch, shaped like ``x``.
        """
        mean = torch.tensor(self.mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=dtype, device=x.device).view(1, -1, 1, 1)
        return (x.to(dtype) / 255 - mean) / std

    def digest(self) -> str:
        """A hash of the images, labels and split: the same digest means the same data."""
        import hashlib

        h = hashlib.blake2b(digest_size=16)
        for t in (self.train_x, self.train_y, self.val_x, self.val_y):
            h.update(repr((tuple(t.shape), str(t.dtype))).encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """The dataset's provenance as JSON-ready data (no tensors); ``digest`` identifies
        the data itself (a resume refuses a dataset whose digest changed)."""
        return {
            "name": self.name,
            "digest": self.digest(),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "train_size": int(self.train_y.numel()),
            "val_size": int(self.val_y.numel()),
            "mean": list(self.mean),
            "std": list(self.std),
        }


@dataclass(frozen=True)
class _Source:
    """A dataset before splitting: its labels, and a way to fetch chosen images.

    Attributes:
        name: the canonical spec.
        labels: int64 ``(N,)`` labels of every image.
        classes: class names.
        fetch: ``fetch(indices, resolution)`` → uint8 ``(len(indices), C, H, W)``; with
            ``resolution=None`` at the native size.
    """

    name: str
    labels: torch.Tensor
    classes: tuple[str, ...]
    fetch: Callable[[list[int], int | None], torch.Tensor]
    groups: torch.Tensor | None = None  # images of one group stay on one side of the split


# ---------------------------------------------------------------------------------------
# split, resize, statistics


def _split(
    labels: torch.Tensor,
    classes: Sequence[str],
    val_fraction: float,
    seed: int,
    limit: int | None,
) -> tuple[list[int], list[int]]:
    """Stratified, seeded train/val indices; ``limit`` then trims train per class."""
    k = len(classes)
    rng = random.Random(seed)
    by_class: list[list[int]] = [[] for _ in range(k)]
    for i, y in enumerate(labels.tolist()):
        by_class[y].append(i)
    train_by_class: list[list[int]] = []
    val: list[int] = []
    for c, idx in enumerate(by_class):
        if len(idx) < 2:
            raise DatasetError(
                f"class {classes[c]!r} has {len(idx)} image(s); at least 2 are needed to "
                "split it into train and validation"
            )
        rng.shuffle(idx)
        n_val = min(max(1, math.floor(len(idx) * val_fraction + 0.5)), len(idx) - 1)
        val.extend(idx[:n_val])
        train_by_class.append(idx[n_val:])
    rng.shuffle(val)  # before ``limit`` touches the generator: val is the same either way
    sizes = [len(t) for t in train_by_class]
    if limit is not None and limit < sum(sizes):
        if limit < k:
            raise DatasetError(
                f"limit={limit} is below the number of classes ({k}); "
                "each class needs at least one training image"
            )
        quotas = _apportion(sizes, limit)
        train_by_class = [t[:q] for t, q in zip(train_by_class, quotas, strict=True)]
    train = [i for t in train_by_class for i in t]
    rng.shuffle(train)
    return train, val


def _split_groups(
    source: _Source, val_fraction: float, seed: int, limit: int | None
) -> tuple[list[int], list[int]]:
    """Like :func:`_split`, over groups (each of one class); ``limit`` then trims images."""
    assert source.groups is not None
    groups = source.groups.tolist()
    labels = source.labels.tolist()
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = sorted(members)
    group_labels = torch.tensor([labels[members[g][0]] for g in keys], dtype=torch.int64)
    train_g, val_g = _split(group_labels, source.classes, val_fraction, seed, None)
    rng = random.Random(seed + 1)
    val = [i for gi in val_g for i in members[keys[gi]]]
    rng.shuffle(val)
    train = [i for gi in train_g for i in members[keys[gi]]]
    rng.shuffle(train)
    if limit is not None and limit < len(train):
        k = len(source.classes)
        if limit < k:
            raise DatasetError(
                f"limit={limit} is below the number of classes ({k}); "
                "each class needs at least one training image"
            )
        by_class: list[list[int]] = [[] for _ in range(k)]
        for i in train:
            by_class[labels[i]].append(i)
        quotas = _apportion([len(b) for b in by_class], limit)
        train = [i for b, q in zip(by_class, quotas, strict=True) for i in b[:q]]
        rng.shuffle(train)
    return train, val


def _apportion(sizes: list[int], total: int) -> list[int]:
    """One per class, the rest in proportion to ``size - 1`` (largest remainder, exact)."""
    k = len(sizes)
    rest, pool = total - k, sum(sizes) - k
    if pool == 0:
        return [1] * k
    shares = [divmod((s - 1) * rest, pool) for s in sizes]
    quotas = [1 + q for q, _ in shares]
    missing = total - sum(quotas)
    order = sorted(range(k), key=lambda c: (-shares[c][1], c))
    for c in order[:missing]:
        quotas[c] += 1
    return quotas


def _resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    """Bilinear resize of uint8 NCHW images in float, rounded back to uint8.

    Antialiasing is asked for only when shrinking: when enlarging, bilinear interpolation
    gives the same values with or without it, and is faster without.
    """
    if resolution is None or tuple(x.shape[-2:]) == (resolution, resolution):
        return x
    shrink = resolution < max(x.shape[-2:])
    out = torch.empty((x.shape[0], x.shape[1], resolution, resolution), dtype=torch.uint8)
    for start in range(0, x.shape[0], _RESIZE_CHUNK):
        chunk = x[start : start + _RESIZE_CHUNK].float()
        y = F.interpolate(
            chunk,
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
            antialias=shrink,
        )
        out[start : start + _RESIZE_CHUNK] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of ``x / 255``, exact from 256-bin histograms.

    A channel with zero spread gets std 1.0, so that normalising never divides by zero.
    """
    count = x.shape[0] * x.shape[2] * x.shape[3]
    levels = list(range(256))
    means: list[float] = []
    stds: list[float] = []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).tolist()
        s1 = sum(h * v for h, v in zip(hist, levels, strict=True))
        s2 = sum(h * v * v for h, v in zip(hist, levels, strict=True))
        var = (s2 * count - s1 * s1) / (count * count)  # Python ints: exact until here
        means.append(s1 / count / 255)
        stds.append(math.sqrt(var) / 255 if var > 0 else 1.0)
    return tuple(means), tuple(stds)


def _in_memory(
    name: str, images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]
) -> _Source:
    def fetch(indices: list[int], resolution: int | None) -> torch.Tensor:
        return _resize(images[indices], resolution)

    return _Source(name=name, labels=labels, classes=classes, fetch=fetch)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
