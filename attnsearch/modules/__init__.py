"""Attention modules, one family per file, and their registry.

Importing this package registers every type. Use :func:`get` / :data:`REGISTRY`.
"""

from __future__ import annotations

from attnsearch.modules import (  # noqa: F401  (imports register the types)
    ca,
    cbam,
    eca,
    epsa,
    rfaconv,
    sa,
    se,
)
from attnsearch.modules.registry import (
    REGISTRY,
    HParam,
    ModuleSpec,
    get,
    module_names,
    register,
    resolve,
)

__all__ = ["REGISTRY", "HParam", "ModuleSpec", "get", "module_names", "register", "resolve"]
