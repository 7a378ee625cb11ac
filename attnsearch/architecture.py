"""The Architecture: a backbone plus one attention choice per slot, as frozen data.

It is the single input to building a model, counting its cost and exporting it as code.
JSON form (DESIGN.md §2, a contract)::

    {"backbone": "resnet50",
     "slots": [{"type": "eca", "k_size": 3}, {"type": "none"}, ...],
     "num_classes": 1000, "input": [3, 224, 224]}

``"all": {"type": "se"}`` may replace ``"slots"``. Omitted hyperparameters take their
defaults. Invalid data raises :class:`ArchitectureError` naming the key and the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsearch import modules
from attnsearch.errors import InputError
from attnsearch.resnet_layout import BACKBONES, DEPLOY_CLASSES, DEPLOY_INPUT, SlotInfo, slot_infos
from attnsearch.safeio import read_text

__all__ = ["Architecture", "ArchitectureError", "SlotChoice", "check_choice"]

_TOP_KEYS = ("backbone", "slots", "all", "num_classes", "input")


class ArchitectureError(InputError):
    """An architecture that cannot be built; the message names the key and the reason."""


def _loads(text: str) -> Any:
    from attnsearch.safeio import NestingError, json_loads

    try:
        return json_loads(text)
    except NestingError as e:
        raise ArchitectureError(f"not valid JSON ({e})") from None
    except json.JSONDecodeError as e:
        raise ArchitectureError(
            f"not valid JSON ({e.msg} at line {e.lineno} col {e.colno})"
        ) from None
    except ValueError:  # an integer of thousands of digits
        raise ArchitectureError("not valid JSON (a number too long)") from None


MAX_CHANNELS, MAX_SIDE = 4096, 16384  # input shapes beyond these are typos, not images
MAX_CLASSES = 1_000_000


def input_problem(shape: Any) -> str | None:
    """What is wrong with ``shape`` as an input ``[C, H, W]``, or None."""
    if not isinstance(shape, list | tuple) or len(shape) != 3:
        return f"must be three positive integers [C, H, W], got {shape!r}"
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        return f"must be three positive integers [C, H, W], got {list(shape)!r}"
    if shape[0] > MAX_CHANNELS or max(shape[1:]) > MAX_SIDE:
        return f"at most {MAX_CHANNELS} channels and {MAX_SIDE} pixels a side, got {list(shape)}"
    return None


@dataclass(frozen=True)
class SlotChoice:
    """One slot's attention type and its resolved hyperparameters (defaults filled in).

    ``SlotChoice.plain()`` is the plain block (the registry's identity entry, ``none``).
    """

    type: str = field(default_factory=lambda: modules.plain().name)
    hparams: tuple[tuple[str, Any], ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters as keyword arguments for the module's constructor."""
        return dict(self.hparams)

    @property
    def is_plain(self) -> bool:
        """The plain block (the registry's identity entry): no module, no cost."""
        return modules.get(self.type).identity

    @classmethod
    def make(cls, type: str, **hparams: Any) -> SlotChoice:
        """Validate and resolve; raises ``ValueError`` for unknown types or bad values."""
        resolved = modules.resolve(type, hparams)
        return cls(type, tuple(resolved.items()))

    @classmethod
    def plain(cls) -> SlotChoice:
        """The plain block's choice (``none``)."""
        return cls(modules.plain().name, ())

    @classmethod
    def from_json(cls, data: Any) -> SlotChoice:
        if isinstance(data, str):
            data = {"type": data}
        if not isinstance(data, Mapping):
            raise ValueError(f"must be an object with a 'type', got {type(data).__name__}")
        if "type" not in data:
            raise ValueError("missing 'type'")
        kind = data["type"]
        if not isinstance(kind, str):
            raise ValueError(f"type must be a string, got {kind!r}")
        return cls.make(kind, **{k: v for k, v in data.items() if k != "type"})

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        out.update((k, v) for k, v in self.hparams if v is not None)
        return out

    def label(self) -> str:
        """Short human label, e.g. ``cbam(r=16,k=7)``."""
        if not self.hparams:
            return self.type
        parts = ",".join(f"{k}={v}" for k, v in self.hparams if v is not None)
        return f"{self.type}({parts})"


def check_choice(choice: SlotChoice, info: SlotInfo) -> None:
    """Raise ``ValueError`` if ``choice`` cannot work in the slot described by ``info``."""
    modules.get(choice.type).check_slot(info, **choice.params)


@dataclass(frozen=True)
class Architecture:
    """A backbone and one :class:`SlotChoice` per residual block (frozen, hashable).

    Attributes:
        backbone: ``resnet18``, ``resnet34``, ``resnet50`` or ``resnet101``.
        slots: one choice per slot, network order.
        num_classes: classes of the deploy network.
        input: deploy input shape (C, H, W), what FLOPs are counted on.
    """

    backbone: str
    slots: tuple[SlotChoice, ...]
    num_classes: int = DEPLOY_CLASSES  # ImageNet, as in the papers' tables
    input: tuple[int, int, int] = field(default=DEPLOY_INPUT)  # the papers' deploy shape

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ArchitectureError(
                f"backbone: unknown {self.backbone!r}; valid: {', '.join(BACKBONES)}"
            )
        n = BACKBONES[self.backbone].num_slots
        if len(self.slots) != n:
            raise ArchitectureError(
                f"slots: {self.backbone} has {n} residual blocks, got {len(self.slots)} entries"
            )
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool):
            raise ArchitectureError(f"num_classes: must be an integer, got {self.num_classes!r}")
        if not 1 <= self.num_classes <= MAX_CLASSES:
            raise ArchitectureError(
                f"num_classes: must be 1..{MAX_CLASSES}, got {self.num_classes}"
            )
        problem = input_problem(self.input)
        if problem:
            raise ArchitectureError(f"input: {problem}")
        for info, choice in zip(slot_infos(self.backbone), self.slots, strict=True):
            try:
                check_choice(choice, info)
            except ValueError as e:
                raise ArchitectureError(f"slots[{info.index}]: {e}") from None

    # ---- construction -------------------------------------------------------------
    @classmethod
    def uniform(cls, backbone: str, type: str | None = None, **hparams: Any) -> Architecture:
        """Every slot gets the same choice (``type`` None: the plain block)."""
        n = BACKBONES[backbone].num_slots if backbone in BACKBONES else 0
        try:
            choice = SlotChoice.plain() if type is None else SlotChoice.make(type, **hparams)
        except ValueError as e:
            raise ArchitectureError(f"all: {e}") from None
        return cls(backbone, (choice,) * n)

    @classmethod
    def plain(
        cls,
        backbone: str,
        num_classes: int = DEPLOY_CLASSES,
        input: tuple[int, int, int] = DEPLOY_INPUT,
    ) -> Architecture:
        """The plain ResNet: every slot the plain block, on this deploy shape."""
        n = BACKBONES[backbone].num_slots if backbone in BACKBONES else 0
        return cls(backbone, (SlotChoice.plain(),) * n, num_classes, input)

    @classmethod
    def from_file(cls, path: str | Path) -> Architecture:
        """Read an architecture file; every error names the file once (what the commands
        that take ``ARCH.json`` print)."""
        from attnsearch.safeio import show

        path = Path(path)
        if not os.path.exists(path):  # (Path.exists raises on a name too long)
            raise ArchitectureError(f"{show(path)}: no such file")
        text = read_text(path, ArchitectureError)
        try:
            return cls.from_json(_loads(text))
        except ArchitectureError as e:
            raise ArchitectureError(f"{show(path)}: {e}") from None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str | Path) -> Architecture:
        """Parse the JSON contract from a dict, a JSON string, or a path to a file (as
        :meth:`from_file`)."""
        if isinstance(data, Path) or (
            isinstance(data, str) and not data.lstrip().startswith(("{", "["))
        ):
            return cls.from_file(data)
        if isinstance(data, str):
            data = _loads(data)
        if not isinstance(data, Mapping):
            raise ArchitectureError(f"must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise ArchitectureError(f"{unknown[0]}: unknown key; valid: {', '.join(_TOP_KEYS)}")
        if "backbone" not in data:
            raise ArchitectureError("backbone: missing")
        backbone = data["backbone"]
        if not isinstance(backbone, str) or backbone not in BACKBONES:
            raise ArchitectureError(
                f"backbone: unknown {backbone!r}; valid: {', '.join(BACKBONES)}"
            )
        n = BACKBONES[backbone].num_slots
        if ("slots" in data) == ("all" in data):
            raise ArchitectureError("slots: give exactly one of 'slots' (a list) or 'all'")
        if "all" in data:
            try:
                slots = (SlotChoice.from_json(data["all"]),) * n
            except ValueError as e:
                raise ArchitectureError(f"all: {e}") from None
        else:
            raw = data["slots"]
            if not isinstance(raw, list):
                raise ArchitectureError(f"slots: must be a list, got {type(raw).__name__}")
            if len(raw) != n:
                raise ArchitectureError(
                    f"slots: {backbone} has {n} residual blocks, got {len(raw)} entries"
                )
            parsed = []
            for i, entry in enumerate(raw):
                try:
                    parsed.append(SlotChoice.from_json(entry))
                except ValueError as e:
                    raise ArchitectureError(f"slots[{i}]: {e}") from None
            slots = tuple(parsed)
        num_classes = data.get("num_classes", DEPLOY_CLASSES)
        shape = data.get("input", list(DEPLOY_INPUT))
        if not isinstance(shape, (list, tuple)):
            raise ArchitectureError(f"input: must be a list [C, H, W], got {shape!r}")
        return cls(backbone, slots, num_classes, tuple(shape))

    def to_json(self) -> dict[str, Any]:
        """The JSON contract (every hyperparameter explicit)."""
        return {
            "backbone": self.backbone,
            "slots": [s.to_json() for s in self.slots],
            "num_classes": self.num_classes,
            "input": list(self.input),
        }

    def dumps(self, indent: int | None = None) -> str:
        return json.dumps(self.to_json(), indent=indent, sort_keys=indent is None)

    def digest(self) -> str:
        """Stable hash (sha256 of the canonical JSON, first 16 hex digits)."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def summary(self) -> str:
        """Compact description: runs of equal choices, e.g. ``3×se(reduction=16) 13×none``."""
        runs: list[list] = []
        for s in self.slots:
            if runs and runs[-1][0] == s:
                runs[-1][1] += 1
            else:
                runs.append([s, 1])
        return " ".join(f"{n}×{c.label()}" if n > 1 else c.label() for c, n in runs)
