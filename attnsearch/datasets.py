"""Datasets as resident uint8 tensors for the proxy trainer.

Like airbench's CIFAR-10 loader, a dataset here is a handful of tensors that the trainer
moves to the device once and slices into batches itself: no ``DataLoader``, no per-sample
Python. :func:`load_dataset` turns a spec string into a :class:`Dataset`:

* ``digits`` — the UCI ML hand-written digits (Alpaydin & Kaynak 1998; 1797 images, 8×8,
  17 grey levels, 10 classes), embedded as ``attnsearch/data/digits.csv.gz`` (the copy that
  scikit-learn ships; see ``attnsearch/data/DIGITS_LICENSE.txt``). The default: it needs no
  download and trains in seconds on a CPU.
* ``clutter`` / ``clutter:SIZE`` — translated, cluttered digits in the manner of the
  cluttered-MNIST task of the recurrent-attention and spatial-transformer papers (Mnih et
  al. 2014, arXiv:1406.6247; Jaderberg et al. 2015, arXiv:1506.02025), derived from the
  embedded digits and generated in memory from the seed: each digit, enlarged to 16×16, is
  placed at a random position on a SIZE×SIZE canvas (default 32) with
  :data:`CLUTTER_PIECES` 8×8 fragments cut from other digits; :data:`CLUTTER_VARIANTS`
  images per digit. The split keeps all images of one source digit on the same side, so
  validation measures unseen handwriting, not unseen placements of a training digit.
* ``mnist-clutter`` / ``mnist-clutter:P`` — 5,000 real MNIST digits (embedded) placed at
  random on 40×40 canvases among P fragments of other digits (default 3); 8,000 training
  and 5,000 validation canvases of held-out digits (:mod:`attnsearch.mnist_clutter`).
* ``synthetic`` / ``synthetic:N`` — generated oriented gratings in N classes (default 10),
  3×16×16, 200 images a class, deterministic from the seed.
* ``cifar10`` / ``cifar100`` — the "python version" archives of Krizhevsky (2009),
  https://www.cs.toronto.edu/~kriz/cifar.html, read from ``data_dir`` (archive or
  extracted), downloaded there when absent. Only the training batches are read; CIFAR-100
  uses its 100 fine labels.
* ``folder:PATH`` — one sub-folder of images per class, like torchvision's
  ``ImageFolder``.

Every dataset is split here into train and validation, stratified by class and reproducible
from ``seed`` alone (Python's :class:`random.Random`, so the same on every machine). The
validation images always come from the training data, never from a test split, so a search
never looks at the test set.

Images stay uint8 ``(N, C, H, W)``; the trainer divides by 255 and normalises with
:attr:`Dataset.mean` / :attr:`Dataset.std` on the device (:meth:`Dataset.normalize`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.resources
import io
import logging
import math
import pickle
import posixpath
import random
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from attnsearch.errors import InputError

__all__ = ["Dataset", "DatasetError", "dataset_caveat", "dataset_names", "load_dataset"]

log = logging.getLogger(__name__)

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


def dataset_names() -> list[str]:
    """The dataset specs :func:`load_dataset` accepts (``PATH`` is a placeholder)."""
    return [
        "digits",
        "clutter",
        "mnist-clutter",
        "synthetic",
        "cifar10",
        "cifar100",
        "folder:PATH",
    ]


def dataset_caveat(spec: str) -> str | None:
    """What a search's ranking on dataset ``spec`` measures, where that is little (one line;
    ``None`` for the others)."""
    entry = _SOURCES.get(str(spec).strip().partition(":")[0].lower())
    return entry.caveat if entry is not None else None


def load_dataset(
    spec: str,
    *,
    data_dir: str | Path = "data",
    resolution: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    download: bool = True,
    check: Callable[[tuple[int, int, int], int, int], None] | None = None,
) -> Dataset:
    """Load a dataset as a stratified train/validation split of uint8 tensors.

    Args:
        spec: ``digits``, ``clutter``, ``clutter:SIZE``, ``synthetic``, ``synthetic:N``, ``cifar10``, ``cifar100`` or
            ``folder:PATH``.
        data_dir: where the CIFAR archives are looked for and downloaded to.
        resolution: resize every image to ``resolution × resolution`` (bilinear with
            antialiasing) once, here; ``None`` keeps the native size (32 for folders).
        val_fraction: the share of each class held out for validation, in (0, 1); every
            class keeps at least one image on each side.
        seed: fixes the split, the ``limit`` subset and the synthetic images.
        limit: at most this many training images, drawn per class in proportion (at least
            one per class); the validation split is the same with or without it.
        download: fetch a missing CIFAR archive from the Toronto site.
        check: called with (image shape, training images, classes) before the images are
            fetched; raises to refuse (what training them would need, for example).

    Returns:
        The loaded :class:`Dataset`.

    Raises:
        DatasetError: an unknown spec, a bad option, or data that is missing or unreadable.
    """
    _check_options(resolution, val_fraction, limit, seed)
    source = _resolve(spec, data_dir=Path(data_dir).expanduser(), download=download, seed=seed)
    if source.groups is None:
        train_idx, val_idx = _split(source.labels, source.classes, val_fraction, seed, limit)
    else:
        train_idx, val_idx = _split_groups(source, val_fraction, seed, limit)
    _check_memory(source, train_idx, val_idx, resolution, check)
    train_x = source.fetch(train_idx, resolution)
    val_x = source.fetch(val_idx, resolution)
    mean, std = _channel_stats(train_x)
    return Dataset(
        name=source.name,
        train_x=train_x,
        train_y=source.labels[train_idx].clone(),
        val_x=val_x,
        val_y=source.labels[val_idx].clone(),
        num_classes=len(source.classes),
        mean=mean,
        std=std,
        classes=source.classes,
    )


# ---------------------------------------------------------------------------------------
# spec parsing and option checks


def _check_memory(
    source: _Source,
    train_idx: list[int],
    val_idx: list[int],
    resolution: int | None,
    check: Callable[[tuple[int, int, int], int, int], None] | None,
) -> None:
    """Refuse a dataset that would not fit in memory at ``resolution`` before the resize
    allocates it (``--resolution 4096`` on 1,797 digits is 30 GB), then ask ``check``
    (shape, training images, classes) whether what is to be done with it fits."""
    from attnsearch.memory import check_fits, dataset_bytes

    if not train_idx:
        return
    one = source.fetch(train_idx[:1], None)  # one image at its native size: its channels
    side = resolution if resolution is not None else max(one.shape[-2:])
    images = len(train_idx) + len(val_idx)
    chunk = min(_RESIZE_CHUNK, len(train_idx), max(len(val_idx), 1))  # resized in float
    need = dataset_bytes(images, one.shape[1], side) + chunk * one.shape[1] * side**2 * 4
    check_fits(
        f"the dataset at resolution {side} ({images:,} images of {one.shape[1]}×{side}×{side})",
        need,
        advice="use a smaller --resolution or --limit",
    )
    if check is not None:
        check((int(one.shape[1]), side, side), len(train_idx), len(source.classes))


def _check_options(
    resolution: int | None, val_fraction: float, limit: int | None, seed: int
) -> None:
    if resolution is not None and (
        isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1
    ):
        raise DatasetError(f"resolution must be a positive integer or None, got {resolution!r}")
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float))
        or not 0 < val_fraction < 1
    ):
        raise DatasetError(
            f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(f"limit must be a positive integer or None, got {limit!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"seed must be an integer, got {seed!r}")


def _resolve(spec: str, *, data_dir: Path, download: bool, seed: int) -> _Source:
    """Look the spec's name up in :data:`_SOURCES` and build its source."""
    if not isinstance(spec, str):
        raise DatasetError(f"dataset spec must be a string, got {spec!r}")
    text = spec.strip()
    head, sep, arg = text.partition(":")
    entry = _SOURCES.get(head.lower())
    if entry is None or (sep and not entry.takes_arg):
        names = dataset_names()
        valid = ", ".join(
            [*names[:2], "clutter:SIZE", names[2], "mnist-clutter:P", names[3], "synthetic:N",
             *names[4:]]
        )  # fmt: skip
        raise DatasetError(f"unknown dataset {spec!r}; valid: {valid}")
    return entry.build(text, arg.strip() if sep else None, data_dir, download, seed)


@dataclass(frozen=True)
class _Entry:
    """One registered dataset name.

    Attributes:
        build: ``build(spec, arg, data_dir, download, seed)``; ``arg`` is the text after
            the colon, or ``None`` without one.
        takes_arg: whether ``name:ARG`` is accepted.
    """

    build: Callable[[str, str | None, Path, bool, int], _Source]
    takes_arg: bool = False  # most names stand alone
    caveat: str | None = None  # what a search's ranking on it measures, where that is little


def _folder_entry(spec: str, arg: str | None, data_dir: Path, download: bool, seed: int) -> _Source:
    if not arg:
        raise DatasetError(f"dataset {spec!r} needs a path: 'folder:PATH'")
    return _folder_source(Path(arg).expanduser())


def _synthetic_entry(
    spec: str, arg: str | None, data_dir: Path, download: bool, seed: int
) -> _Source:
    if arg is None:
        return _synthetic_source(10, seed)
    try:
        n = int(arg)
    except ValueError:
        n = 0
    if not 2 <= n <= 1000:
        raise DatasetError(f"dataset {spec!r}: N in 'synthetic:N' must be an integer in 2..1000")
    return _synthetic_source(n, seed)


def _clutter_entry(
    spec: str, arg: str | None, data_dir: Path, download: bool, seed: int
) -> _Source:
    if arg is None:
        return _clutter_source(CLUTTER_SIZE, seed)
    try:
        size = int(arg)
    except ValueError:
        size = 0
    if not 24 <= size <= 128:
        raise DatasetError(
            f"dataset {spec!r}: SIZE in 'clutter:SIZE' must be an integer in 24..128"
        )
    return _clutter_source(size, seed)


def _mnist_clutter_entry(
    spec: str, arg: str | None, data_dir: Path, download: bool, seed: int
) -> _Source:
    from attnsearch import mnist_clutter as mc

    pieces = mc.PIECES
    if arg is not None:
        pieces = int(arg) if arg.isascii() and arg.isdigit() and len(arg) <= 3 else -1
        if not 0 <= pieces <= mc.MAX_PIECES:
            raise DatasetError(
                f"dataset {spec!r}: P in 'mnist-clutter:P' must be an integer in 0..{mc.MAX_PIECES}"
            )
    try:
        digits, labels = mc.load_digits()
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    classes = tuple(str(d) for d in range(10))
    # the digit split _split_groups will make again (same labels, fraction and seed)
    train_d, val_d = _split(labels, classes, mc.VAL_FRACTION, seed, None)
    g = torch.Generator().manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    parts, owners = [], []
    for side, variants in ((train_d, mc.TRAIN_VARIANTS), (val_d, mc.VAL_VARIANTS)):
        pool = torch.tensor(sorted(side), dtype=torch.int64)
        owner = pool.repeat_interleave(variants)
        parts.append(mc.render(digits, owner, pool, pieces=pieces, generator=g))
        owners.append(owner)
    images, groups = torch.cat(parts), torch.cat(owners)
    name = "mnist-clutter" if pieces == mc.PIECES else f"mnist-clutter:{pieces}"
    source = _in_memory(name, images, labels[groups].clone(), classes)
    return _Source(source.name, source.labels, source.classes, source.fetch, groups)


def _cifar_entry(key: str) -> _Entry:
    def build(spec: str, arg: str | None, data_dir: Path, download: bool, seed: int) -> _Source:
        return _cifar_source(_ARCHIVES[key], data_dir, download)

    return _Entry(build)


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


# ---------------------------------------------------------------------------------------
# digits


def _digits_source() -> _Source:
    images, labels = _digits_tensors()
    return _in_memory("digits", images, labels, tuple(str(d) for d in range(10)))


def _digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded digits as uint8 ``(1797, 1, 8, 8)`` images and int64 labels."""
    resource = importlib.resources.files("attnsearch") / "data" / "digits.csv.gz"
    try:
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as f:
            rows = [[int(v) for v in row] for row in csv.reader(f) if row]
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"cannot read the embedded {resource}: {_one_line(exc)}") from exc
    table = torch.tensor(rows, dtype=torch.int64)
    if table.ndim != 2 or table.shape[1] != 65:
        raise DatasetError(f"the embedded {resource} does not have 65 columns a row")
    pixels = table[:, :64]
    images = ((pixels * 255 + 8) // 16).clamp_(0, 255).to(torch.uint8).view(-1, 1, 8, 8)
    labels = table[:, 64].contiguous()
    return images, labels


# ---------------------------------------------------------------------------------------
# clutter


def _clutter_source(size: int, seed: int) -> _Source:
    images, labels, groups, _ = _make_clutter(size, seed)
    name = "clutter" if size == CLUTTER_SIZE else f"clutter:{size}"
    source = _in_memory(name, images, labels, tuple(str(d) for d in range(10)))
    return _Source(source.name, source.labels, source.classes, source.fetch, groups)


def _make_clutter(
    size: int, seed: int, variants: int = CLUTTER_VARIANTS, pieces: int = CLUTTER_PIECES
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cluttered, translated digits: ``(images, labels, groups, positions)``.

    Image ``i`` shows digit ``groups[i] = i // variants`` of the embedded set, enlarged to
    16×16, with its top-left corner at ``positions[i] = (row, col)``; ``pieces`` 8×8
    fragments of other digits lie at random places. Overlaps keep the brighter pixel, so
    the digit's own strokes are never erased.
    """
    digits, digit_labels = _digits_tensors()
    big = _resize(digits, CLUTTER_DIGIT)[:, 0].to(torch.int64)  # (D, 16, 16)
    d = big.shape[0]
    g = torch.Generator().manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    n = d * variants
    groups = torch.arange(d).repeat_interleave(variants)
    canvas = torch.zeros(n, size * size, dtype=torch.int64)

    from attnsearch.mnist_clutter import paste_max

    def paste(patches: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
        paste_max(canvas, size, patches, rows, cols)

    for _ in range(pieces):  # distractors first; the digit is pasted over them with max
        other = (groups + 1 + torch.randint(0, d - 1, (n,), generator=g)) % d
        off = torch.randint(0, CLUTTER_DIGIT - CLUTTER_PIECE + 1, (n, 2), generator=g)
        r = off[:, 0].view(n, 1, 1) + torch.arange(CLUTTER_PIECE).view(1, -1, 1)
        c = off[:, 1].view(n, 1, 1) + torch.arange(CLUTTER_PIECE).view(1, 1, -1)
        frag = big[other.view(n, 1, 1), r, c]
        at = torch.randint(0, size - CLUTTER_PIECE + 1, (n, 2), generator=g)
        paste(frag, at[:, 0], at[:, 1])
    positions = torch.randint(0, size - CLUTTER_DIGIT + 1, (n, 2), generator=g)
    paste(big[groups], positions[:, 0], positions[:, 1])
    images = canvas.clamp_(0, 255).to(torch.uint8).view(n, 1, size, size)
    return images, digit_labels[groups].clone(), groups, positions


# ---------------------------------------------------------------------------------------
# synthetic


def _synthetic_source(num_classes: int, seed: int) -> _Source:
    images, labels = _make_synthetic(num_classes, seed)
    name = "synthetic" if num_classes == 10 else f"synthetic:{num_classes}"
    return _in_memory(name, images, labels, tuple(f"pattern{c}" for c in range(num_classes)))


def _make_synthetic(
    num_classes: int, seed: int, per_class: int = SYNTHETIC_PER_CLASS, size: int = SYNTHETIC_SIZE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Oriented colour gratings under a shifted Gaussian window, plus heavy pixel noise.

    Class ``c`` fixes the grating's orientation (``m = ceil(N / 2)`` angles over 180°), its
    spatial frequency (2 or 4 cycles across the image) and a faint colour tint; each image
    draws its phase, window centre and width, contrast, a colour jitter larger than the
    tint differences, and Gaussian noise (σ = 0.25 of the range). The class is readable
    from local texture, not from position or colour alone. A two-layer CNN reaches about
    90 % validation accuracy after 100 Adam steps; the noise keeps the ceiling below 100 %,
    leaving room to rank architectures.
    """
    g = torch.Generator().manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF)
    dt = torch.float64
    k, n = num_classes, num_classes * per_class
    m = math.ceil(k / 2)
    cls = torch.arange(k)
    theta = math.pi * (cls % m).to(dt) / m
    freq = torch.where(cls < m, 2.0, 4.0).to(dt) / size  # cycles per pixel
    colour = 0.55 + 0.3 * torch.rand(k, 3, generator=g, dtype=dt)  # class tint, per channel

    labels = cls.repeat_interleave(per_class)
    phase = 2 * math.pi * torch.rand(n, generator=g, dtype=dt)
    centre = (size - 1) / 2 + (torch.rand(n, 2, generator=g, dtype=dt) - 0.5) * (size / 2.5)
    width = size * (0.25 + 0.15 * torch.rand(n, generator=g, dtype=dt))
    contrast = 0.4 + 0.6 * torch.rand(n, generator=g, dtype=dt)
    tint = colour[labels] + 0.4 * (torch.rand(n, 3, generator=g, dtype=dt) - 0.5)
    noise = 0.25 * torch.randn(n, 3, size, size, generator=g, dtype=dt)

    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=dt), torch.arange(size, dtype=dt), indexing="ij"
    )
    th, fr = theta[labels].view(n, 1, 1), freq[labels].view(n, 1, 1)
    along = xx * torch.cos(th) + yy * torch.sin(th)
    wave = torch.sin(2 * math.pi * fr * along + phase.view(n, 1, 1))
    dist2 = (xx - centre[:, 0].view(n, 1, 1)) ** 2 + (yy - centre[:, 1].view(n, 1, 1)) ** 2
    window = torch.exp(-dist2 / (2 * width.view(n, 1, 1) ** 2))
    pattern = (contrast.view(n, 1, 1) * window * wave).unsqueeze(1)  # (n, 1, H, W)
    img = 0.5 + 0.45 * pattern * tint.view(n, 3, 1, 1) + noise
    images = (img * 255).round_().clamp_(0, 255).to(torch.uint8)
    return images, labels


# ---------------------------------------------------------------------------------------
# CIFAR


@dataclass(frozen=True)
class _Archive:
    """One CIFAR "python version" archive.

    Attributes:
        name: the dataset spec.
        filename: the archive's file name on the server and in ``data_dir``.
        md5: its published checksum.
        folder: the folder it extracts to.
        train_files: the pickles with training images, in order.
        meta_file: the pickle with class names.
        label_key: the label key in the training pickles.
        names_key: the class-name key in the meta pickle.
        member_md5: published checksums of the extracted members we read (torchvision's).
    """

    name: str
    filename: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    meta_file: str
    label_key: bytes
    names_key: bytes
    member_md5: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        """Where to download it."""
        return CIFAR_URL + self.filename


CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"  # Krizhevsky's page; the archives live here
DOWNLOAD_TIMEOUT_S = 60  # per network read; a stalled connection fails rather than hangs

_ARCHIVES: dict[str, _Archive] = {
    "cifar10": _Archive(
        name="cifar10",
        filename="cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        member_md5=(
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
        ),
    ),
    "cifar100": _Archive(
        name="cifar100",
        filename="cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train_files=("train",),
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        member_md5=(
            ("train", "16019d7e3df5f24257cddd939b257f8d"),
            ("meta", "7973b15100ade9c7d40fb424638fde48"),
        ),
    ),
}


def _cifar_source(archive: _Archive, data_dir: Path, download: bool) -> _Source:
    folder = data_dir / archive.folder
    tar_path = data_dir / archive.filename
    members = (*archive.train_files, archive.meta_file)
    if folder.is_dir() and all((folder / m).is_file() for m in members):
        blobs = {m: _read_file(folder / m) for m in members}
        expected = dict(archive.member_md5)
        for m, blob in blobs.items():
            _check_md5(archive, blob, expected[m], folder / m)
        place = f"{folder}/{{}}"
    else:
        if not tar_path.is_file():
            if folder.is_dir():
                missing = next(m for m in members if not (folder / m).is_file())
                hint = f"{folder / missing} is missing"
            else:
                hint = f"neither {tar_path} nor {folder} exists"
            if not download:
                raise DatasetError(
                    f"{archive.name}: {hint} and download is disabled; put {archive.filename} "
                    f"(from {archive.url}) in {data_dir}"
                )
            _download(archive, tar_path)
        else:  # an archive found in data_dir is checked like a downloaded one
            _check_md5(archive, _read_file(tar_path), archive.md5, tar_path)
        blobs = _read_tar(tar_path, archive.folder, members)
        place = f"{tar_path}:{archive.folder}/{{}}"
    return _decode_cifar(archive, blobs, place)


def _check_md5(archive: _Archive, blob: bytes, expected: str, path: Path) -> None:
    """Refuse a file that is not the published one: nothing else is ever unpickled."""
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if digest != expected:
        raise DatasetError(
            f"{archive.name}: {path} has md5 {digest}, expected {expected} (not the official "
            f"file, or damaged); delete it and put {archive.filename} from {archive.url} "
            f"in {path.parent if path.name == archive.filename else path.parent.parent}"
        )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {_one_line(exc)}") from exc


def _read_tar(path: Path, folder: str, members: Sequence[str]) -> dict[str, bytes]:
    """Read the named members of ``folder`` from a tar.gz without extracting anything."""
    wanted = {posixpath.join(folder, m): m for m in members}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for info in tar:
                key = posixpath.normpath(info.name)
                if key in wanted and info.isfile():
                    f = tar.extractfile(info)
                    if f is None:  # pragma: no cover - isfile() members always have data
                        continue
                    blobs[wanted[key]] = f.read()
                    if len(blobs) == len(wanted):
                        break
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"corrupted or truncated archive {path} ({_one_line(exc)}); delete it and "
            "download it again"
        ) from exc
    missing = [m for m in members if m not in blobs]
    if missing:
        raise DatasetError(
            f"archive {path} lacks {posixpath.join(folder, missing[0])}; it is truncated "
            "or not the expected archive"
        )
    return blobs


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle cannot run code here."""

    _ALLOWED = {
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _unpickle(blob: bytes, where: str) -> dict:
    try:
        # the standard CIFAR format; checked against its md5 before, and restricted anyway
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except ModuleNotFoundError as exc:
        raise DatasetError(f"reading {where} needs the {exc.name!r} package") from exc
    except Exception as exc:  # any unpickling failure means a damaged file
        raise DatasetError(f"corrupted CIFAR file {where} ({_one_line(exc)})") from exc
    if not isinstance(obj, dict):
        raise DatasetError(f"corrupted CIFAR file {where} (not a dict)")
    return obj


def _decode_cifar(archive: _Archive, blobs: dict[str, bytes], place: str) -> _Source:
    """Unpickle the members; ``place.format(member)`` names one in error messages."""
    label = place.format
    meta = _unpickle(blobs[archive.meta_file], label(archive.meta_file))
    try:
        classes = tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in meta[archive.names_key]
        )
    except (KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"corrupted CIFAR file {label(archive.meta_file)} (no {archive.names_key!r})"
        ) from exc
    images, labels = [], []
    for member in archive.train_files:
        where_m = label(member)
        batch = _unpickle(blobs[member], where_m)
        try:
            data = torch.as_tensor(batch[b"data"])
            y = torch.as_tensor(batch[archive.label_key], dtype=torch.int64).flatten()
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DatasetError(f"corrupted CIFAR file {where_m} ({_one_line(exc)})") from exc
        if data.dtype != torch.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(
                f"corrupted CIFAR file {where_m} (data is {data.dtype} "
                f"{tuple(data.shape)}, expected uint8 (N, 3072))"
            )
        if y.numel() != data.shape[0]:
            raise DatasetError(
                f"corrupted CIFAR file {where_m} ({y.numel()} labels for {data.shape[0]} images)"
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise DatasetError(
                f"corrupted CIFAR file {where_m} (labels outside 0..{len(classes) - 1})"
            )
        images.append(data.reshape(-1, 3, 32, 32))  # each row: R plane, G plane, B plane
        labels.append(y)
    return _in_memory(archive.name, torch.cat(images), torch.cat(labels), classes)


def _download(archive: _Archive, dest: Path) -> None:
    """Download ``archive`` to ``dest`` through a ``.part`` file, checking its md5."""
    part = dest.with_name(dest.name + ".part")
    advice = f"download {archive.url} yourself and put it in {dest.parent}"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s to %s", archive.url, dest)
        digest = hashlib.md5(usedforsecurity=False)
        with (
            urllib.request.urlopen(archive.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            open(part, "wb") as f,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive.name}: downloading {archive.url} failed ({_one_line(exc)}); {advice}"
        ) from exc
    if digest.hexdigest() != archive.md5:
        part.unlink(missing_ok=True)
        raise DatasetError(
            f"{archive.name}: the download of {archive.url} has md5 {digest.hexdigest()}, "
            f"expected {archive.md5}; {advice}"
        )
    part.replace(dest)


# ---------------------------------------------------------------------------------------
# folder


def _folder_source(root: Path) -> _Source:
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} is not a directory")
    root = root.resolve()
    class_dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if len(class_dirs) < 2:
        raise DatasetError(
            f"dataset folder {root} has {len(class_dirs)} class sub-folder(s); "
            "at least 2 are needed (one sub-folder of images per class)"
        )
    files: list[Path] = []
    labels: list[int] = []
    walk = _WalkBudget(root)
    for c, d in enumerate(class_dirs):
        found = sorted(
            p
            for p in _walk_images(d, walk)
            if not any(part.startswith(".") for part in p.relative_to(d).parts)
        )
        if not found:
            raise DatasetError(f"class folder {d} has no images ({', '.join(IMAGE_SUFFIXES)})")
        files.extend(found)
        labels.extend([c] * len(found))

    def fetch(indices: list[int], resolution: int | None) -> torch.Tensor:
        size = FOLDER_RESOLUTION if resolution is None else resolution
        out = torch.empty((len(indices), 3, size, size), dtype=torch.uint8)
        for row, i in enumerate(indices):
            out[row] = _resize(_read_image(files[i]).unsqueeze(0), size)[0]
        return out

    return _Source(
        name=f"folder:{root}",
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=tuple(d.name for d in class_dirs),
        fetch=fetch,
    )


MAX_LINK_DEPTH = 16  # folder symlinks followed along one path; beyond: chained links
MAX_WALK_ENTRIES = 2_000_000  # folder entries looked at in one dataset folder
WALK_DEADLINE_S = 300.0  # seconds a dataset folder's walk may take


class _WalkBudget:
    """What walking one dataset folder may cost: entries seen and a deadline. Chained
    (not looping) folder symlinks multiply the paths to walk (two links to the next
    folder, twenty levels: a million paths); the walk stops with one line instead."""

    def __init__(self, root: Path):
        import time

        self.root = root
        self.entries = 0
        self.deadline = time.monotonic() + WALK_DEADLINE_S

    def spend(self, n: int) -> None:
        import time

        from attnsearch.safeio import show

        self.entries += n
        if self.entries > MAX_WALK_ENTRIES:
            raise DatasetError(
                f"dataset folder {show(self.root)} has more than {MAX_WALK_ENTRIES:,} entries "
                "to walk (chained folder symlinks?)"
            )
        if time.monotonic() > self.deadline:
            raise DatasetError(
                f"dataset folder {show(self.root)}: walking it took more than "
                f"{WALK_DEADLINE_S:g} s (chained folder symlinks, or a slow file system?)"
            )


def _walk_images(top: Path, walk: _WalkBudget | None = None) -> list[Path]:
    """Image files under ``top``, following folder symlinks; a symlink that leads back into
    a folder above it (a loop) is refused, once, instead of walking it forever, and so are
    more than :data:`MAX_LINK_DEPTH` symlinked folders along one path and a walk over
    ``walk``'s budget."""
    import os

    from attnsearch.safeio import show

    walk = walk if walk is not None else _WalkBudget(top)
    found: list[Path] = []
    stack = [(top, (os.path.realpath(top),), 0)]
    while stack:
        folder, above, links = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise DatasetError(f"cannot read image folder {show(folder)}: {e.strerror}") from None
        walk.spend(len(entries) + 1)
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
                is_link = is_dir and entry.is_symlink()
            except OSError:
                continue
            if is_dir:
                real = os.path.realpath(path)
                if real in above:
                    raise DatasetError(
                        f"image folder {show(path)} is a symlink loop (it leads back to "
                        f"{show(real)})"
                    )
                if links + is_link > MAX_LINK_DEPTH:
                    raise DatasetError(
                        f"image folder {show(path)} is reached through more than "
                        f"{MAX_LINK_DEPTH} folder symlinks (chained symlinks are not walked)"
                    )
                stack.append((path, (*above, real), links + is_link))
            elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                found.append(path)
    return found


def _read_image(path: Path) -> torch.Tensor:
    """Decode one image file to uint8 RGB ``(3, H, W)``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            width, height = rgb.size
            data = bytearray(rgb.tobytes())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image {path} ({_one_line(exc)})") from exc
    return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1)


_SOURCES: dict[str, _Entry] = {
    "digits": _Entry(
        lambda spec, arg, data_dir, download, seed: _digits_source(),
        caveat=(
            "on digits (8×8, saturated: a 20-epoch reference puts every network at "
            "98.2-99.4 %, benchmarks/RESULTS.md §8) this ranking measures how fast a network "
            "starts learning in a short proxy, not what attention adds"
        ),
    ),
    "clutter": _Entry(_clutter_entry, takes_arg=True),
    "mnist-clutter": _Entry(_mnist_clutter_entry, takes_arg=True),
    "synthetic": _Entry(_synthetic_entry, takes_arg=True),
    "cifar10": _cifar_entry("cifar10"),
    "cifar100": _cifar_entry("cifar100"),
    "folder": _Entry(_folder_entry, takes_arg=True),
}
