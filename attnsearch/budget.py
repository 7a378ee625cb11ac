"""Budget strings (DESIGN.md §1; issue 13): the units decide between FLOPs and time.

FLOPs: ``4GFLOPs``, ``4G``, ``4e9``, ``350MFLOPs``, ``4 GFLOPs``. Latency: ``25ms``,
``800us`` (or ``800µs``), ``0.02s``, ``25 ms``. :func:`parse_cost_budget` reads either and
returns a :class:`Budget`: the one value a run carries (its kind, its limit, the text the
user wrote), parsed once at the command line and stored as such in run.yaml.
:func:`parse_budget` reads FLOPs only (an ``int``). The range of a budget is checked in one
place, :class:`Budget` itself.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from attnsearch.errors import InputError

__all__ = [
    "NS_PER_MS",
    "Budget",
    "BudgetError",
    "budget_forms",
    "format_flops",
    "format_latency",
    "ms_to_ns",
    "ns_to_ms",
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
NS_PER_MS = 1_000_000  # latency: people read milliseconds, costs compare in integer ns


def ms_to_ns(ms: float) -> int:
    """Milliseconds as the integer nanoseconds a latency cost compares in (the one
    conversion)."""
    return int(round(ms * NS_PER_MS))


def ns_to_ms(ns: float) -> float:
    """Nanoseconds (a latency cost) as the milliseconds people read and records store."""
    return ns / NS_PER_MS


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
    problem = _problem("flops", value)
    if problem:
        raise BudgetError(f"invalid budget {text!r}: {problem}; use a form like {_FORMS}")
    return int(round(value))


def _forms(kind: str) -> str:
    """The accepted forms every budget error ends with."""
    return _TIME_FORMS if kind == "latency" else _FORMS


def budget_forms(latency: bool) -> str:
    """The forms a budget option accepts, as its errors show them (``latency``: ``run
    --budget``, FLOPs or a time; else FLOPs only)."""
    return f"FLOPs ({_FORMS}) or a latency ({_TIME_FORMS})" if latency else _FORMS


def _problem(kind: str, value: Any) -> str | None:
    """What is wrong with ``value`` as a limit of this kind, or None (the one range check;
    its callers add the accepted forms)."""
    if kind not in ("flops", "latency"):
        return f"the kind must be flops or latency, not {kind!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {type(value).__name__}"
    if not math.isfinite(value):
        return "not a finite number"
    if kind == "latency":
        if value <= 0:
            return "a latency must be positive"
        if value > _MAX_LATENCY_MS:
            return "more than an hour"
        if ms_to_ns(value) < 1:
            return "less than a nanosecond"
        return None
    if value <= 0:
        return "must be a positive number of FLOPs"
    if value > _MAX_FLOPS:
        return f"more than {_MAX_FLOPS:.0e} FLOPs"
    if round(value) < 1:
        return "less than one FLOP"
    return None


@dataclass(frozen=True)
class Budget:
    """A parsed cost budget: the one form a run's budget takes once the command line read it.

    Two budgets are equal when kind and value are (``4G`` and ``4GFLOPs`` are one budget;
    ``700us`` and ``0.7ms`` too: a latency is kept to the integer nanosecond its cost is
    compared in, so no spelling's float rounding makes two of one limit).

    Attributes:
        kind: ``"flops"`` (value: FLOPs, an int) or ``"latency"`` (value: milliseconds, a
            whole number of nanoseconds).
        value: the limit.
        text: the budget as the user wrote it (``""``: not written by a user).
    """

    kind: Literal["flops", "latency"]
    value: float
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        problem = _problem(self.kind, self.value)
        if problem:
            raise BudgetError(
                f"invalid budget {self.text or self.value!r}: {problem}; use a form like "
                f"{_forms(self.kind)}"
            )
        if self.kind == "flops":
            object.__setattr__(self, "value", int(round(self.value)))
        else:
            object.__setattr__(self, "value", ns_to_ms(ms_to_ns(self.value)))

    @property
    def is_latency(self) -> bool:
        return self.kind == "latency"

    @property
    def label(self) -> str:
        """What the limit is, for people: ``4.14 GFLOPs``, ``25 ms predicted latency``."""
        return f"{self} predicted latency" if self.is_latency else str(self)

    def __str__(self) -> str:
        return format_flops(self.value) if self.kind == "flops" else format_latency(self.value)

    def to_dict(self) -> dict[str, Any]:
        """The form stored in run.yaml and summary.json."""
        return {"kind": self.kind, "value": self.value, "text": self.text}

    @classmethod
    def from_dict(cls, data: Any, where: str = "budget") -> Budget:
        """A budget from :meth:`to_dict`'s form; unknown or missing keys refused.

        Raises:
            BudgetError: not that form, or a limit out of range.
        """
        keys = {"kind", "value", "text"}
        if not isinstance(data, dict) or not {"kind", "value"} <= set(data) <= keys:
            raise BudgetError(f"{where}: expected a mapping with kind, value and text")
        text = data.get("text", "")
        if not isinstance(text, str):
            raise BudgetError(f"{where}: text has the wrong type ({type(text).__name__})")
        return cls(data["kind"], data["value"], text)


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
            problem = _problem("latency", ms)
            if problem:
                raise BudgetError(
                    f"invalid budget {text!r}: {problem}; use a form like {_TIME_FORMS}"
                )
            return Budget("latency", ms, text.strip())
    try:
        return Budget("flops", parse_budget(text), str(text).strip())
    except BudgetError as e:
        if _PATTERN.match(str(text)) is not None:
            raise
        raise BudgetError(f"invalid budget {text!r}; use {budget_forms(True)}") from e


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
