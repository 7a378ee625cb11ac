"""Budget strings (DESIGN.md §1; issue 13): the units decide between FLOPs and time.

FLOPs: ``4GFLOPs``, ``4G``, ``4e9``, ``350MFLOPs``, ``4 GFLOPs``. Latency: ``25ms``,
``800us`` (or ``800µs``), ``0.02s``, ``25 ms``. :func:`parse_budget` reads FLOPs only (an
``int``); :func:`parse_cost_budget` reads either and returns a :class:`Budget` naming the kind.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from attnsearch.errors import InputError

__all__ = [
    "Budget",
    "BudgetError",
    "format_flops",
    "format_latency",
    "parse_budget",
    "parse_cost_budget",
]

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
_TIME_UNITS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3}
_TIME_PATTERN = re.compile(
    r"""^\s*
    (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)
    \s*
    (?P<unit>ms|us|µs|μs|s)                           # milliseconds, microseconds, seconds
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_TIME_FORMS = "25ms, '25 ms', 800us, 0.02s"
_MAX_LATENCY_MS = 3_600_000.0  # an hour per forward pass: beyond that the number is a typo
_MAX_FLOPS = 1e18  # an exa-FLOP per image: far beyond any CNN, so a typo


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
    if value > _MAX_FLOPS:
        raise BudgetError(f"invalid budget {text!r}: more than {_MAX_FLOPS:.0e} FLOPs")
    return int(round(value))


@dataclass(frozen=True)
class Budget:
    """A parsed cost budget.

    Attributes:
        kind: ``"flops"`` (value: FLOPs, an int) or ``"latency"`` (value: milliseconds).
        value: the limit.
    """

    kind: Literal["flops", "latency"]
    value: float

    def __str__(self) -> str:
        return format_flops(self.value) if self.kind == "flops" else format_latency(self.value)


def parse_cost_budget(text: str | int | float) -> Budget:
    """Parse a FLOPs or a latency budget; the unit decides which.

    Numbers without a unit and FLOPs/MACs units are FLOPs (as :func:`parse_budget`);
    ``s``, ``ms``, ``us``/``µs`` are latency, returned in milliseconds.

    Raises:
        BudgetError: neither form, not positive, not finite, or absurdly large.
    """
    if isinstance(text, str):
        m = _TIME_PATTERN.match(text)
        if m is not None:
            ms = float(m["num"]) * _TIME_UNITS[m["unit"].lower()]
            if not math.isfinite(ms) or ms <= 0:
                raise BudgetError(
                    f"invalid budget {text!r}: a latency must be positive, like {_TIME_FORMS}"
                )
            if ms > _MAX_LATENCY_MS:
                raise BudgetError(
                    f"invalid budget {text!r}: more than an hour; use a form like {_TIME_FORMS}"
                )
            return Budget("latency", ms)
    try:
        return Budget("flops", parse_budget(text))
    except BudgetError as e:
        if _PATTERN.match(str(text)) is not None:
            raise
        raise BudgetError(
            f"invalid budget {text!r}; use FLOPs ({_FORMS}) or a latency ({_TIME_FORMS})"
        ) from e


def format_latency(ms: float) -> str:
    """``25.0`` → ``25 ms``; ``0.8`` → ``800 µs``; ``1500`` → ``1.5 s``."""
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    if ms >= 1:
        return f"{ms:.3g} ms"
    return f"{ms * 1000:.3g} µs"


def format_flops(n: float) -> str:
    """``4139261952`` → ``4.14 GFLOPs``."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}FLOPs"
    return f"{n:g} FLOPs"
