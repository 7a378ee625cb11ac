"""Attention modules, one family per file, and their registry.

Importing this package registers every type, in the order of DESIGN.md §2 (``none``, the
plain block, then gates, then conv replacements): that is the order the registry lists
them in. Use :func:`get` / :data:`REGISTRY` / :func:`plain`. A new type is one file that
calls :func:`register` and one line here.

The RFA family and SA also have a device formulation (:mod:`.formulations`), chosen per
call by device; :func:`set_formulation` / :func:`formulation` override the choice.
"""

from __future__ import annotations

# isort: off
from attnsearch.modules import none  # noqa: F401  (the plain block, the identity entry)
from attnsearch.modules import se  # noqa: F401  (each import registers its types)
from attnsearch.modules import eca  # noqa: F401
from attnsearch.modules import cbam  # noqa: F401
from attnsearch.modules import sa  # noqa: F401
from attnsearch.modules import ca  # noqa: F401
from attnsearch.modules import epsa  # noqa: F401
from attnsearch.modules import rfaconv  # noqa: F401  (rfaconv, rfcbamconv, rfcaconv)

# isort: on
from attnsearch.modules.formulations import formulation, get_formulation, set_formulation
from attnsearch.modules.registry import (
    REGISTRY,
    HParam,
    ModuleSpec,
    check_positive,
    get,
    module_names,
    plain,
    register,
    resolve,
)

__all__ = [
    "REGISTRY",
    "HParam",
    "ModuleSpec",
    "check_positive",
    "formulation",
    "get",
    "get_formulation",
    "module_names",
    "plain",
    "register",
    "resolve",
    "set_formulation",
]
