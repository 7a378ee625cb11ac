"""How a candidate is trained (:class:`ProxyConfig`), and strict dataclass <-> dict for configs.

Torch-free on purpose: the CLI takes its option defaults from these dataclass fields, and
``--help`` must not import torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from attnsearch.errors import InputError

__all__ = [
    "ConfigError",
    "ProxyConfig",
    "bounded",
    "check_bounds",
    "config_from_dict",
    "field_bounds",
    "field_default",
    "number_problem",
]

T = TypeVar("T")

MAX_SEED = 2**31 - 1  # numpy and torch take it; larger ones are not seeds


class ConfigError(InputError):
    """A stored or given config with an unknown key, a missing key or a wrong type."""


# ---- numeric bounds: declared once on the dataclass field, checked where values enter ----
def bounded(default: Any, lo: float, hi: float, *, lo_open: bool = False) -> Any:
    """A dataclass field whose value (when not None) must lie in ``[lo, hi]`` (``(lo, hi]``
    with ``lo_open``). The click option types read the same bounds
    (:func:`attnsearch.cli._numbers.Number.of`), ``__post_init__`` checks them."""
    return dataclasses.field(default=default, metadata={"bounds": (lo, hi, lo_open)})


def field_bounds(cls: type, name: str) -> tuple[float, float, bool, bool]:
    """``(lo, hi, lo_open, integer)`` of a :func:`bounded` field of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == name:
            lo, hi, lo_open = f.metadata["bounds"]
            tp = hints[name]
            integer = tp is int or (
                typing.get_origin(tp) in (typing.Union, types.UnionType)
                and int in typing.get_args(tp)
            )
            return lo, hi, lo_open, integer
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def number_problem(
    value: Any, lo: float, hi: float, *, lo_open: bool = False, integer: bool = False
) -> str | None:
    """What is wrong with ``value`` as a number in the given range, or None."""
    import math

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


OPTIMIZERS = ("sgd", "adamw")  # ProxyConfig.optimizer
# lr and weight decay an optimizer gets when the user sets neither (RunSettings.make)
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {},  # the field defaults below
    "adamw": {"lr": 0.002, "weight_decay": 0.05},  # stage A pilot, benchmarks/RESULTS.md §16
}


@dataclass(frozen=True)
class ProxyConfig:
    """How a candidate is trained. Recorded in run.yaml (as ``proxy:``)."""

    epochs: int = bounded(2, 1, 10_000)  # enough to rank candidates on the proxy
    batch_size: int = bounded(128, 1, 65_536)  # fits a laptop CPU and fills a GPU slice
    lr: float = bounded(0.2, 0, 100, lo_open=True)  # peak SGD lr for batch 128 (scaled)
    momentum: float = bounded(0.9, 0, 1)  # Nesterov momentum
    weight_decay: float = bounded(5e-4, 0, 1)  # the usual ResNet value
    warmup: float = bounded(0.2, 0, 1)  # fraction of steps spent warming the lr up
    label_smoothing: float = bounded(0.1, 0, 0.99)  # steadier ranking, short schedules
    width: float = bounded(0.5, 0, 16, lo_open=True)  # channel multiplier of the proxy
    resolution: int | None = bounded(None, 4, 4096)  # proxy image size; None: the dataset's
    augment: bool = True  # random translation by up to 1/8 of the image, on the device
    flip: bool = False  # horizontal flips (natural images only; set from the dataset)
    seed: int = bounded(0, 0, MAX_SEED)  # base seed; each trial adds its trial number
    zero_init_residual: bool = True  # last BN of each block starts at 0: deep nets train fast
    bf16: bool = True  # bf16 autocast on CUDA (CPU is always float32); False: numbers as on CPU
    # sgd (Nesterov, lr and weight_decay as above) | adamw (lr and weight_decay taken as
    # AdamW's: e.g. 0.002 and 0.05); the gates' ~0.5 scale slows SGD, not Adam (MEASURED.md)
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        check_bounds(self, "proxy")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"proxy.optimizer: {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "proxy") -> ProxyConfig:
        return config_from_dict(cls, data, where)


def field_default(cls: type, name: str) -> Any:
    """The declared default of dataclass field ``name`` (the one place a default lives)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            raise KeyError(f"{cls.__name__}.{name} has no default")
    raise KeyError(f"{cls.__name__} has no field {name!r}")


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

    Nested dataclass fields are built from nested dicts. ``where`` names the source in the
    one-line error (``results/x/run.yaml``).
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = config_from_dict(tp, value, f"{where}: {name}")
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
