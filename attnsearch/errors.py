"""User-facing errors: bad input of any kind ends with one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

__all__ = ["InputError", "read_text"]


class InputError(ValueError):
    """Bad input (a value, a file, a folder); the message is one line naming the problem."""

    exit_code = 2


def read_text(path: Path, error: type[InputError] = InputError) -> str:
    """The UTF-8 text of an input file; a file that cannot be read or decoded, or that is
    not a regular file of a sane size (:func:`attnsearch.safeio.read_text`), raises
    ``error`` with one line naming the file."""
    from attnsearch.safeio import read_text as _read

    return _read(path, error)
