"""Output places, checked before any work: a file goes into an existing, writable folder."""

from __future__ import annotations

import os
from pathlib import Path

from attnsearch.errors import InputError

__all__ = ["check_output_file"]


def check_output_file(option: str, path: str | Path, *, force: bool | None = None) -> Path:
    """Refuse ``path`` unless its folder exists and takes a new file (probed: a read-only
    mount or /proc refuses even root); ``path`` itself must not be a folder. ``force``
    (a command with ``--force``): an existing file is refused unless it is True — no
    command overwrites a file it was not told to.

    Raises:
        InputError: one line naming ``option`` and the place.
    """
    import tempfile

    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder, not a file")
    if force is False and os.path.lexists(path):
        raise InputError(f"{option} {path}: exists; pass --force to overwrite it")
    if not parent.exists():
        raise InputError(f"{option} {path}: folder {parent}/ does not exist (create it first)")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise InputError(f"{option} {path}: cannot write in {parent}/ ({e.strerror})") from None
    return path
