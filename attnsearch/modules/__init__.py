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

# list the types in the order of DESIGN.md §2 (gates first, then conv replacements)
_ORDER = ("se", "eca", "cbam", "sa", "ca", "epsa", "rfaconv", "rfcbamconv", "rfcaconv")
_rest = {k: v for k, v in REGISTRY.items() if k not in _ORDER}
_ordered = {k: REGISTRY[k] for k in _ORDER if k in REGISTRY}
REGISTRY.clear()
REGISTRY.update({**_ordered, **_rest})

__all__ = ["REGISTRY", "HParam", "ModuleSpec", "get", "module_names", "register", "resolve"]
