"""The export's error type."""

from __future__ import annotations

from attnsearch.errors import InputError

__all__ = ["ExportError"]


class ExportError(InputError):
    """An export that cannot be made (unknown trial, no checkpoint, bad options)."""
