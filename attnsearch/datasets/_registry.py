"""The registry of dataset builders and :func:`load_dataset`.

The names, their spellings and what each decides (flips, caveats) are
:mod:`attnsearch.dataset_specs`'; this registry maps each of those names to the
builder of its images (a test checks that both hold the same names).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from attnsearch.dataset_specs import dataset_forms, dataset_spec
from attnsearch.datasets._cifar import _ARCHIVES, _cifar_source
from attnsearch.datasets._core import (
    _RESIZE_CHUNK,
    CLUTTER_SIZE,
    Dataset,
    DatasetError,
    _channel_stats,
    _in_memory,
    _Source,
    _split,
    _split_groups,
)
from attnsearch.datasets._folder import _folder_source
from attnsearch.datasets._generated import _clutter_source, _digits_source, _synthetic_source


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
    """Look the spec's name up in the names (:data:`attnsearch.dataset_specs.DATASETS`) and build
    its source with its builder."""
    if not isinstance(spec, str):
        raise DatasetError(f"dataset spec must be a string, got {spec!r}")
    text = spec.strip()
    head, sep, arg = text.partition(":")
    name = dataset_spec(head)
    if name is None or (sep and name.arg is None):
        raise DatasetError(f"unknown dataset {spec!r}; valid: {dataset_forms()}")
    build = _BUILDERS[name.name]
    return build(text, arg.strip() if sep else None, data_dir, download, seed)


# build(spec, arg, data_dir, download, seed); arg: the text after the colon, or None
_Builder = Callable[[str, str | None, Path, bool, int], _Source]


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


def _cifar_entry(key: str) -> _Builder:
    def build(spec: str, arg: str | None, data_dir: Path, download: bool, seed: int) -> _Source:
        return _cifar_source(_ARCHIVES[key], data_dir, download)

    return build


_BUILDERS: dict[str, _Builder] = {
    "digits": lambda spec, arg, data_dir, download, seed: _digits_source(),
    "clutter": _clutter_entry,
    "mnist-clutter": _mnist_clutter_entry,
    "synthetic": _synthetic_entry,
    "cifar10": _cifar_entry("cifar10"),
    "cifar100": _cifar_entry("cifar100"),
    "folder": _folder_entry,
}
