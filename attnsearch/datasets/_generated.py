"""Datasets made in memory: the embedded digits, cluttered digits and synthetic gratings."""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import math

import torch

from attnsearch.datasets._core import (
    CLUTTER_DIGIT,
    CLUTTER_PIECE,
    CLUTTER_PIECES,
    CLUTTER_SIZE,
    CLUTTER_VARIANTS,
    SYNTHETIC_PER_CLASS,
    SYNTHETIC_SIZE,
    DatasetError,
    _in_memory,
    _one_line,
    _resize,
    _Source,
)

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
