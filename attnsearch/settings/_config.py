"""The config machinery under :mod:`attnsearch.settings`: fields that carry their range and
option help, and strict dict <-> frozen dataclass (unknown keys, wrong types refused).

Torch-free, and imports nothing of the package but :mod:`attnsearch.errors`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from attnsearch.errors import InputError

T = TypeVar("T")


class ConfigError(InputError):
    """A stored or given config with an unknown key, a missing key or a wrong type."""


# ---- fields: a default, a range, the option's help -------------------------------------
def setting(default: Any, *, help: str) -> Any:
    """A dataclass field with the help text of the command-line option that sets it."""
    return dataclasses.field(default=default, metadata={"help": help})


def bounded(
    default: Any, lo: float, hi: float, *, lo_open: bool = False, help: str | None = None
) -> Any:
    """A dataclass field whose value (when not None) must lie in ``[lo, hi]`` (``(lo, hi]``
    with ``lo_open``). The click option types read the same bounds
    (:func:`attnsearch.cli._numbers.Number.of`), ``__post_init__`` checks them."""
    metadata: dict[str, Any] = {"bounds": (lo, hi, lo_open)}
    if help is not None:
        metadata["help"] = help
    return dataclasses.field(default=default, metadata=metadata)


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def field_bounds(cls: type, name: str) -> tuple[float, float, bool, bool]:
    """``(lo, hi, lo_open, integer)`` of a :func:`bounded` field of dataclass ``cls``."""
    lo, hi, lo_open = _field(cls, name).metadata["bounds"]
    tp = typing.get_type_hints(cls)[name]
    integer = tp is int or (
        typing.get_origin(tp) in (typing.Union, types.UnionType) and int in typing.get_args(tp)
    )
    return lo, hi, lo_open, integer


def field_default(cls: type, name: str) -> Any:
    """The declared default of dataclass field ``name`` (the one place a default lives)."""
    f = _field(cls, name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def field_help(cls: type, name: str) -> str:
    """The help text of the option that sets field ``name`` (:func:`setting`, :func:`bounded`)."""
    return _field(cls, name).metadata["help"]


def number_problem(
    value: Any, lo: float, hi: float, *, lo_open: bool = False, integer: bool = False
) -> str | None:
    """What is wrong with ``value`` as a number in the given range, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, got {type(value).__name__}"
    if integer and not isinstance(value, int):
        return f"must be an integer, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    shown = value if abs(value) < 10**30 else f"a number of {len(str(int(value)))} digits"
    if value < lo or (lo_open and value == lo):
        return f"must be {'above' if lo_open else 'at least'} {lo:g}, got {shown}"
    if value > hi:
        return f"must be at most {hi:g}, got {shown}"
    return None


def check_bounds(obj: Any, where: str | None = None) -> None:
    """Check every :func:`bounded` field of dataclass instance ``obj`` (``__post_init__``).

    Raises:
        ConfigError: a value out of its bounds, naming the field.
    """
    cls = type(obj)
    for f in dataclasses.fields(obj):
        if "bounds" not in f.metadata:
            continue
        value = getattr(obj, f.name)
        if value is None:
            continue
        lo, hi, lo_open, integer = field_bounds(cls, f.name)
        problem = number_problem(value, lo, hi, lo_open=lo_open, integer=integer)
        if problem:
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}{f.name} {problem}")


def _check_choice(obj: Any, name: str, allowed: tuple[str, ...], where: str) -> None:
    if getattr(obj, name) not in allowed:
        raise ConfigError(
            f"{where}: {name} must be one of {', '.join(allowed)}, got {getattr(obj, name)!r}"
        )


# ---- dict <-> dataclass, strictly --------------------------------------------------------
def _nested(tp: Any) -> type | None:
    """The dataclass a field holds (``X`` or ``X | None``), or None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else None
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _accepts(tp: Any, value: Any) -> bool:
    """A loose runtime check of ``value`` against a field annotation (YAML scalars)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if origin is list or tp is list:
        return isinstance(value, list)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict | tp)
    return True


def config_from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build frozen dataclass ``cls`` from a plain dict; unknown keys and wrong types refused.

    Nested dataclass fields (``X`` or ``X | None``) are built from nested dicts, by the
    class's own ``from_dict`` where it has one. ``where`` names the source in the one-line
    error (``results/x/run.yaml``).
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        nested = _nested(tp)
        if nested is not None and isinstance(value, dict):
            inner = f"{where}: {name}"
            try:
                build = getattr(nested, "from_dict", None)
                value = build(value, inner) if build else config_from_dict(nested, value, inner)
            except ConfigError:
                raise
            except InputError as e:
                raise ConfigError(str(e) if inner in str(e) else f"{inner}: {e}") from None
        elif not _accepts(tp, value):
            raise ConfigError(f"{where}: {name} has the wrong type ({type(value).__name__})")
        elif tp is float and isinstance(value, int):
            value = float(value)
        kwargs[name] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    return cls(**kwargs)
