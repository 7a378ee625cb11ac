"""attnsearch: neural architecture search over CNN attention modules.

Public API (DESIGN.md §2): :class:`Architecture`, :func:`build_model`, :func:`profile`.
Imports are lazy so that ``attnsearch --help`` does not import torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureError",
    "SlotChoice",
    "__version__",
    "analytic_flops",
    "build_model",
    "profile",
]

_LAZY = {
    "Architecture": "attnsearch.architecture",
    "ArchitectureError": "attnsearch.architecture",
    "SlotChoice": "attnsearch.architecture",
    "build_model": "attnsearch.api",
    "profile": "attnsearch.api",
    "analytic_flops": "attnsearch.flops.analytic",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'attnsearch' has no attribute {name!r}")
