"""User-facing errors: bad input of any kind ends with one line and exit code 2.

A leaf: it imports nothing of the package (reading input files is :mod:`attnsearch.safeio`'s).
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input (a value, a file, a folder); the message is one line naming the problem."""

    exit_code = 2
