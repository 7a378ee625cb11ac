"""The attention-module registry: a dict from type name to its :class:`ModuleSpec`.

Two constructor contracts, recorded in each entry's ``kind``:

* ``"gate"`` (se, eca, cbam, sa, ca) — ``cls(channels, **hparams)``, applied after the
  block's last BN, before the residual add; returns a tensor shaped like its input.
* ``"conv"`` (epsa, rfaconv, rfcbamconv, rfcaconv) — ``cls(in_channels, out_channels,
  stride, **hparams)``, replaces the block's 3×3 convolution (stride inside).

Each entry also carries an analytic FLOPs function that must equal the traced count
(:mod:`attnsearch.flops.counter`) exactly, and a ``check`` that raises ``ValueError`` for
hyperparameters that cannot work with the given channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "HParam",
    "ModuleSpec",
    "REGISTRY",
    "get",
    "register",
    "resolve",
    "module_names",
]

Kind = Literal["gate", "conv"]


@dataclass(frozen=True)
class HParam:
    """One hyperparameter of an attention type.

    Attributes:
        name: the contract name (architecture JSON, space files, CLI).
        type: ``int`` or ``float``.
        default: the value when omitted (``None`` only for ``optional`` ones).
        choices: the closed set of allowed values, or ``None`` for a range.
        low: smallest allowed value (ranges), inclusive.
        high: largest allowed value (ranges), inclusive.
        optional: ``None`` is a legal value (e.g. ECA's ``k_size``: derive k from γ and b).
        odd: integer values must be odd (kernel sizes).
        help: one line for ``attnsearch modules``.
    """

    name: str
    type: type
    default: Any
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    optional: bool = False
    odd: bool = False
    help: str = ""

    def validate(self, module: str, value: Any) -> Any:
        """Return ``value`` coerced to this type, or raise ``ValueError`` naming the rule."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{module}: {self.name} must be given (got null)")
        if isinstance(value, bool):
            raise ValueError(f"{module}: {self.name} must be {self.type.__name__}, got {value!r}")
        if self.type is int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int):
                raise ValueError(f"{module}: {self.name} must be an integer, got {value!r}")
        elif self.type is float:
            if not isinstance(value, (int, float)):
                raise ValueError(f"{module}: {self.name} must be a number, got {value!r}")
            value = float(value)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ValueError(f"{module}: {self.name}={value!r} is not one of {allowed}")
        if self.low is not None and value < self.low:
            raise ValueError(f"{module}: {self.name}={value!r} is below the minimum {self.low:g}")
        if self.high is not None and value > self.high:
            raise ValueError(f"{module}: {self.name}={value!r} is above the maximum {self.high:g}")
        if self.odd and value % 2 == 0:
            raise ValueError(f"{module}: {self.name}={value!r} must be odd")
        return value

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "choices": list(self.choices) if self.choices is not None else None,
            "low": self.low,
            "high": self.high,
            "optional": self.optional,
            "odd": self.odd,
            "help": self.help,
        }


@dataclass(frozen=True)
class ModuleSpec:
    """A registered attention type.

    Attributes:
        name: the type name (``"se"``, ``"rfaconv"``, ...).
        kind: ``"gate"`` or ``"conv"`` (see the module docstring).
        cls: the ``nn.Module`` class.
        hparams: the hyperparameter schema.
        paper: title and arXiv id of the paper.
        code: the official repository.
        requires: what the type needs of the channel count, in words.
        check: ``check(channels, **hp)`` (gate) or ``check(in_channels, out_channels,
            stride, **hp)`` (conv); raises ``ValueError`` naming the module, value and rule.
        flops: analytic FLOPs for a batch of one. Gate: ``flops(channels, h, w, **hp)``;
            conv: ``flops(in_channels, out_channels, stride, h, w, **hp)`` where ``h, w``
            is the *input* size. Must equal the traced count exactly.
    """

    name: str
    kind: Kind
    cls: type
    hparams: tuple[HParam, ...]
    paper: str
    code: str
    requires: str
    check: Callable[..., None]
    flops: Callable[..., int]

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams}

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "paper": self.paper,
            "code": self.code,
            "requires": self.requires,
            "hparams": [h.to_json() for h in self.hparams],
        }


REGISTRY: dict[str, ModuleSpec] = {}


def register(spec: ModuleSpec) -> ModuleSpec:
    """Add ``spec`` to the registry (module files call this at import)."""
    if spec.name in REGISTRY:
        raise ValueError(f"attention type {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def module_names() -> list[str]:
    """All registered type names plus ``"none"``, in registry order."""
    return ["none", *REGISTRY]


def get(name: str) -> ModuleSpec:
    """The spec of ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        valid = ", ".join(module_names())
        raise ValueError(f"unknown attention type {name!r}; valid types: {valid}") from None


def resolve(name: str, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``hparams`` of type ``name`` against its schema and fill in the defaults.

    Unknown keys, wrong types and out-of-range values raise ``ValueError``. Channel-dependent
    rules are checked later by ``spec.check`` when the channels are known.
    """
    spec = get(name)
    known = {h.name: h for h in spec.hparams}
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"{name}: unknown hyperparameter {unknown[0]!r}; valid: {', '.join(known) or '(none)'}"
        )
    return {h.name: h.validate(name, hparams.get(h.name, h.default)) for h in spec.hparams}
