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

__all__ = ["ConfigError", "ProxyConfig", "config_from_dict", "field_default"]

T = TypeVar("T")


class ConfigError(InputError):
    """A stored or given config with an unknown key, a missing key or a wrong type."""


@dataclass(frozen=True)
class ProxyConfig:
    """How a candidate is trained. Recorded in run.yaml (as ``proxy:``)."""

    epochs: int = 2  # enough to rank candidates on the proxy, not to converge
    batch_size: int = 128  # fits a small proxy on a laptop CPU and fills a GPU slice
    lr: float = 0.2  # peak SGD learning rate for batch 128 (scaled linearly with batch size)
    momentum: float = 0.9  # Nesterov momentum
    weight_decay: float = 5e-4  # the usual ResNet value
    warmup: float = 0.2  # fraction of steps spent warming the learning rate up
    label_smoothing: float = 0.1  # steadier ranking with very short schedules
    width: float = 0.5  # channel multiplier of the proxy network
    resolution: int | None = None  # proxy image size; None keeps the dataset's own
    augment: bool = True  # random translation by up to 1/8 of the image, on the device
    flip: bool = False  # horizontal flips (natural images only; set from the dataset)
    seed: int = 0  # base seed; each trial adds its trial number
    zero_init_residual: bool = True  # last BN of each block starts at 0: deep nets train fast
    bf16: bool = True  # bf16 autocast on CUDA (CPU is always float32); False: numbers as on CPU

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
