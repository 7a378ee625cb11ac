"""FLOPs budget strings (DESIGN.md §1): ``4GFLOPs``, ``4G``, ``4e9``, ``350MFLOPs``, ``4 GFLOPs``."""

from __future__ import annotations

import math
import re

from attnsearch.errors import InputError

__all__ = ["BudgetError", "format_flops", "parse_budget"]

_PREFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_PATTERN = re.compile(
    r"""^\s*
    (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)   # 4, 4.5, .5, 4e9
    \s*
    (?P<prefix>[kmgt]?)                               # K, M, G, T
    (?P<unit>flops?|macs?)?                           # FLOPs, MACs (one MAC counts once)
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_FORMS = "4GFLOPs, 4G, 4e9, 350MFLOPs, 350M, '4 GFLOPs' (GMACs means the same)"


class BudgetError(InputError):
    """A budget string that cannot be read."""


def parse_budget(text: str | int | float) -> int:
    """Parse a FLOPs budget into an integer count of multiply-accumulates.

    Raises:
        BudgetError: the string is not one of the accepted forms, or not positive.
    """
    if isinstance(text, bool):
        raise BudgetError(f"invalid budget {text!r}; use a form like {_FORMS}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _PATTERN.match(str(text))
        if m is None:
            raise BudgetError(f"invalid budget {text!r}; use a form like {_FORMS}")
        value = float(m["num"]) * _PREFIX[m["prefix"].lower()]
    if not math.isfinite(value) or value <= 0:
        raise BudgetError(f"invalid budget {text!r}: must be a positive number of FLOPs")
    return int(round(value))


def format_flops(n: float) -> str:
    """``4139261952`` → ``4.14 GFLOPs``."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}FLOPs"
    return f"{n:g} FLOPs"
