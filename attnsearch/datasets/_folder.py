"""``folder:PATH``: one sub-folder of images per class, walked within limits."""

from __future__ import annotations

from pathlib import Path

import torch

from attnsearch.datasets._core import (
    FOLDER_RESOLUTION,
    IMAGE_SUFFIXES,
    DatasetError,
    _one_line,
    _resize,
    _Source,
)

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
