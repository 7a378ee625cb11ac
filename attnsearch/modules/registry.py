"""The attention-module registry: a dict from type name to its :class:`ModuleSpec`.

The registry owns every choice a slot can hold, ``none`` (the plain block) included, and
every decision about where a type goes in a residual block. Two constructor contracts,
recorded in each entry's ``placement``:

* ``"gate"`` (se, eca, cbam, sa, ca) — ``cls(channels, **hparams)``, applied after the
  block's last BN, before the residual add; returns a tensor shaped like its input.
* ``"conv"`` (epsa, rfaconv, rfcbamconv, rfcaconv) — ``cls(in_channels, out_channels,
  stride, **hparams)``, replaces the block's 3×3 convolution (stride inside).

``none`` is the one *identity* entry (:attr:`ModuleSpec.identity`): a gate whose module is
the identity, so it adds nothing to a block (the plain block), costs nothing and takes no
hyperparameters; :func:`plain` returns it.

Shared code never branches on a type name or a placement: it asks the entry to build its
module for a slot (:meth:`ModuleSpec.build`, :meth:`ModuleSpec.block_args`), to check a
slot's hyperparameters (:meth:`ModuleSpec.check_slot`), for the FLOPs it adds in a slot
(:meth:`ModuleSpec.added_flops`, equal to the traced count exactly), whether it is the
plain block (:attr:`ModuleSpec.identity`) and for the canonical form of its
hyperparameters (:meth:`ModuleSpec.canonical`). Adding a type is one file that calls
:func:`register`, and one import line in ``attnsearch/modules/__init__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from attnsearch.resnet_layout import SlotInfo

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "HParam",
    "ModuleSpec",
    "REGISTRY",
    "check_positive",
    "get",
    "module_names",
    "plain",
    "register",
    "resolve",
]

Placement = Literal["gate", "conv"]

# the residual block's keyword argument that receives each placement's layer factory
_BLOCK_ARG: dict[str, str] = {"gate": "attn_layer", "conv": "conv_layer"}
# where each kind goes, in words (``attnsearch modules``)
_WHERE: dict[str, str] = {
    "gate": "gate after last BN",
    "conv": "replaces the 3×3 conv",
    "none": "plain block",
}
_PAPER = re.compile(r"(?P<title>.+) \(arXiv:(?P<arxiv>\d{4}\.\d{4,5})\)")


def check_positive(module: str, **values: Any) -> None:
    """Raise ``ValueError`` naming ``module`` unless every value is a positive integer (the
    one channel check: channel counts, strides, kernel sizes, ...), in the order given."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{module}: {key}={value!r} must be a positive integer")


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
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"{module}: {self.name} must be a finite number, got {value!r}")
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
        name: the type name (``"none"``, ``"se"``, ``"rfaconv"``, ...).
        placement: ``"gate"`` or ``"conv"``: where the module goes in a residual block and
            which constructor contract its class follows (see the module docstring).
        cls: the ``nn.Module`` class.
        hparams: the hyperparameter schema.
        paper: title and arXiv id of the paper, ``"Title (arXiv:1709.01507)"``
            (:attr:`title`, :attr:`arxiv`).
        code: the official repository.
        requires: what the type needs of the channel count, in words.
        check: the module file's own check, ``check(channels, **hp)`` (gate) or
            ``check(in_channels, out_channels, stride, **hp)`` (conv); raises
            ``ValueError`` naming the module, value and rule. Use :meth:`check_slot`.
        flops: the module file's analytic FLOPs for a batch of one, ``flops(channels, h,
            w, **hp)`` (gate) or ``flops(in_channels, out_channels, stride, h, w, **hp)``
            (conv, ``h, w`` the *input* size). Use :meth:`added_flops`.
        ignored: optional ``ignored(params) -> names``: the hyperparameters that have no
            effect given (some of) the others, e.g. ECA's ``gamma`` and ``b`` once a fixed
            ``k_size`` is given. :meth:`canonical` records them at their defaults.
        identity: the plain block (``none``): a gate whose module is the identity; it adds
            nothing to a block (:meth:`block_args` is empty), no FLOPs, no parameters, and
            takes no hyperparameters. One entry is the identity (:func:`plain`).
    """

    name: str
    placement: Placement
    cls: type
    hparams: tuple[HParam, ...]
    paper: str
    code: str
    requires: str
    check: Callable[..., None]
    flops: Callable[..., int]
    ignored: Callable[[Mapping[str, Any]], Iterable[str]] | None = None
    identity: bool = False

    def __post_init__(self) -> None:
        if self.placement not in _BLOCK_ARG:
            raise ValueError(f"{self.name}: placement must be 'gate' or 'conv'")
        if _PAPER.fullmatch(self.paper) is None:
            raise ValueError(f"{self.name}: paper must read 'Title (arXiv:NNNN.NNNNN)'")
        if self.identity and (self.placement != "gate" or self.hparams):
            raise ValueError(f"{self.name}: the identity is a gate without hyperparameters")

    @property
    def kind(self) -> str:
        """``"gate"``, ``"conv"``, or ``"none"`` for the identity (the plain block)."""
        return "none" if self.identity else self.placement

    @property
    def where(self) -> str:
        """Where the type goes in a residual block, in words."""
        return _WHERE[self.kind]

    @property
    def title(self) -> str:
        """The paper's title."""
        return _PAPER.fullmatch(self.paper)["title"]  # type: ignore[index]

    @property
    def arxiv(self) -> str:
        """The paper's arXiv id."""
        return _PAPER.fullmatch(self.paper)["arxiv"]  # type: ignore[index]

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams}

    # ---- in a slot ---------------------------------------------------------------------
    def _args(self, slot: SlotInfo) -> tuple[int, ...]:
        """The constructor's positional arguments in ``slot`` (the placement's contract)."""
        if self.placement == "gate":
            return (slot.out_channels,)
        return (slot.conv_in, slot.conv_out, slot.stride)

    def check_slot(self, slot: SlotInfo, **hp: Any) -> None:
        """Raise ``ValueError`` if these hyperparameters cannot work in ``slot``."""
        self.check(*self._args(slot), **hp)

    def build(self, slot: SlotInfo, **hp: Any) -> nn.Module:
        """The module for ``slot`` (a gate on its output, or its 3×3 conv's replacement)."""
        return self.cls(*self._args(slot), **hp)

    def block_args(self, **hp: Any) -> dict[str, Callable[..., nn.Module]]:
        """Keyword arguments for a residual block: ``{"attn_layer": factory}`` for a gate,
        ``{"conv_layer": factory}`` for a conv replacement (timm's ``attn_layer`` style).

        The block calls the factory with the placement's constructor arguments, in the
        place where it builds the layer (so parameters are created in network order).
        The identity gives ``{}``: the plain block.
        """
        if self.identity:
            return {}
        return {_BLOCK_ARG[self.placement]: partial(self.cls, **hp)}

    def added_flops(self, slot: SlotInfo, h: int, w: int, **hp: Any) -> int:
        """FLOPs (batch of one) this choice adds to ``slot``'s plain block, whose input is
        ``h × w``: a gate's own FLOPs, or a conv replacement's minus the plain 3×3 conv's.
        May be negative (a replacement cheaper than the conv); 0 for the identity."""
        if self.identity:
            return 0
        ho, wo = slot.conv_out_size(h, w)
        if self.placement == "gate":
            return self.flops(slot.out_channels, ho, wo, **hp)
        plain = slot.conv_out * ho * wo * slot.conv_in * 9
        return self.flops(slot.conv_in, slot.conv_out, slot.stride, h, w, **hp) - plain

    def canonical(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the hyperparameters that have no effect set to their defaults."""
        out = dict(params)
        if self.ignored is not None:
            defaults = self.defaults()
            out.update({k: defaults[k] for k in self.ignored(params)})
        return out

    def ignored_given(self, params: Mapping[str, Any]) -> frozenset[str]:
        """Hyperparameters without effect once ``params`` (possibly partial) are fixed."""
        return frozenset(self.ignored(params)) if self.ignored is not None else frozenset()

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
    if spec.identity and any(s.identity for s in REGISTRY.values()):
        raise ValueError(f"{spec.name}: a second identity entry ({plain().name} is one)")
    REGISTRY[spec.name] = spec
    return spec


def module_names() -> list[str]:
    """All registered type names (``"none"`` first), in registry order."""
    return list(REGISTRY)


def plain() -> ModuleSpec:
    """The identity entry: the plain block (``none``)."""
    for spec in REGISTRY.values():
        if spec.identity:
            return spec
    raise LookupError("no identity entry registered (attnsearch.modules registers 'none')")


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
    rules are checked later by :meth:`ModuleSpec.check_slot` when the channels are known.
    """
    spec = get(name)
    known = {h.name: h for h in spec.hparams}
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ValueError(
            f"{name}: unknown hyperparameter {unknown[0]!r}; valid: {', '.join(known) or '(none)'}"
        )
    return {h.name: h.validate(name, hparams.get(h.name, h.default)) for h in spec.hparams}
