"""Search spaces: YAML files mapped to Optuna define-by-run parameters (DESIGN.md §3).

A space file::

    description: one line
    backbone: resnet50
    input: [3, 224, 224]          # deploy shape (FLOPs are counted on it)
    num_classes: 1000              # deploy classes
    granularity: block             # block: one choice per residual block; stage: per stage
    slots: all                     # or a list of block (or stage) indices; the rest stay "none"
    choices:                       # type -> hyperparameter -> allowed values
      none: {}
      se: {reduction: [8, 16, 32]}
      eca: {k_size: [null, 3, 5, 7], gamma: [2], b: [1]}

Every combination of listed values must be buildable in every slot it can land in at the
deploy width; anything else fails on load with the file, the key and the reason. Sampling
names Optuna parameters ``slot3.type``, ``slot3.cbam.kernel_size`` (``stage2.…`` for stage
granularity). At a proxy width, combinations the narrower proxy cannot build are left out
of that slot's options (:meth:`SearchSpace.options`), never silently changed.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from attnsearch import modules
from attnsearch.architecture import (
    MAX_CLASSES,
    Architecture,
    SlotChoice,
    check_choice,
    input_problem,
)
from attnsearch.backbones import BACKBONES, slot_infos
from attnsearch.errors import InputError
from attnsearch.resnet_layout import DEPLOY_CLASSES, DEPLOY_INPUT
from attnsearch.safeio import read_text

__all__ = ["SearchSpace", "SpaceError", "load_space", "space_names", "Options"]

_KEYS = ("description", "backbone", "input", "num_classes", "granularity", "slots", "choices")


class SpaceError(InputError):
    """A space file that cannot be used; the message names the file, the key and the reason."""


# unit -> type -> list of valid hyperparameter combinations (each a SlotChoice)
Options = list[dict[str, list[SlotChoice]]]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    Attributes:
        name: the space's name (file stem).
        description: one line.
        backbone: backbone name.
        input: deploy input shape.
        num_classes: deploy classes.
        granularity: ``"block"`` or ``"stage"``.
        units: searchable units (block indices, or stage numbers 1–4).
        choices: type -> ((hparam, (values...)), ...), in file order.
        source: where it was loaded from.
    """

    name: str
    description: str
    backbone: str
    input: tuple[int, int, int]
    num_classes: int
    granularity: str
    units: tuple[int, ...]
    choices: tuple[tuple[str, tuple[tuple[str, tuple[Any, ...]], ...]], ...]
    source: str

    # ---- structure -----------------------------------------------------------------
    def unit_name(self, unit: int) -> str:
        return f"slot{unit}" if self.granularity == "block" else f"stage{unit}"

    def unit_slots(self, unit: int) -> list[int]:
        """Block indices a unit's choice applies to."""
        if self.granularity == "block":
            return [unit]
        return [i.index for i in slot_infos(self.backbone) if i.stage == unit]

    def combos(self, type_name: str) -> list[SlotChoice]:
        """Every combination of the listed values of ``type_name`` (deduplicated)."""
        hp = dict(self.choices)[type_name]
        spec = modules.get(type_name)
        names = [h for h, _ in hp]
        seen: dict[SlotChoice, None] = {}
        for values in itertools.product(*(v for _, v in hp)):
            # hyperparameters without effect (given the others) are recorded at defaults
            params = spec.canonical(dict(zip(names, values, strict=True)))
            seen[SlotChoice.make(type_name, **params)] = None
        return list(seen)

    def options(self, width: float = 1.0) -> Options:
        """Per unit: type -> valid combinations at ``width`` (deploy checks use 1.0)."""
        infos = slot_infos(self.backbone, width)
        out: Options = []
        for unit in self.units:
            per_type: dict[str, list[SlotChoice]] = {}
            for type_name, _ in self.choices:
                valid = []
                for choice in self.combos(type_name):
                    try:
                        for s in self.unit_slots(unit):
                            check_choice(choice, infos[s])
                    except ValueError:
                        continue
                    valid.append(choice)
                if valid:
                    per_type[type_name] = valid
            out.append(per_type)
        return out

    def check_width(self, width: float, option: str = "--width") -> Options:
        """The options at ``width``; a unit left with no buildable choice is refused.

        Raises:
            SpaceError: naming the first such unit.
        """
        options = self.options(width)
        for unit, per_type in zip(self.units, options, strict=True):
            if not per_type:
                raise SpaceError(
                    f"{option} {width:g}: no choice of space {self.name!r} can be built in "
                    f"{self.unit_name(unit)} at that width (its channels are too few); "
                    "raise the width or add choices such as 'none'"
                )
        return options

    def size(self, width: float = 1.0) -> int:
        """Number of distinct architectures."""
        return math.prod(sum(len(v) for v in unit.values()) for unit in self.options(width))

    # ---- sampling ------------------------------------------------------------------
    def sample(self, trial, options: Options) -> Architecture:
        """Define-by-run: sample one architecture with an Optuna trial (cheap, no torch work).

        Raises:
            ValueError: the sampled hyperparameters form no valid combination in a slot
                (possible only when two values are jointly impossible at the proxy width).
        """
        slots = list(Architecture.plain(self.backbone).slots)
        for unit, per_type in zip(self.units, options, strict=True):
            prefix = self.unit_name(unit)
            type_name = trial.suggest_categorical(f"{prefix}.type", list(per_type))
            valid = per_type[type_name]
            params: dict[str, Any] = {}
            spec = modules.get(type_name)
            for hp, _ in dict(self.choices)[type_name]:
                values = sorted({dict(c.hparams)[hp] for c in valid}, key=_sort_key)
                if hp in spec.ignored_given(params):
                    continue  # no effect given the values sampled so far
                params[hp] = trial.suggest_categorical(f"{prefix}.{type_name}.{hp}", values)
            choice = _match(valid, type_name, params)
            for s in self.unit_slots(unit):
                slots[s] = choice
        return Architecture(self.backbone, tuple(slots), self.num_classes, self.input)

    def unit_choices(self, arch: Architecture, options: Options) -> list[SlotChoice] | None:
        """Per unit, the choice ``arch`` makes there; ``None`` if the space cannot express it.

        Expressible means: same backbone, one choice across each unit's blocks, that choice
        among the unit's ``options``, and every block outside the searchable units ``none``.
        """
        if arch.backbone != self.backbone:
            return None
        covered = {s for unit in self.units for s in self.unit_slots(unit)}
        if any(not c.is_plain for i, c in enumerate(arch.slots) if i not in covered):
            return None
        out = []
        for unit, per_type in zip(self.units, options, strict=True):
            chosen = {arch.slots[s] for s in self.unit_slots(unit)}
            if len(chosen) != 1:
                return None
            (choice,) = chosen
            if choice not in per_type.get(choice.type, ()):
                return None
            out.append(choice)
        return out

    def params(self, arch: Architecture, options: Options) -> dict[str, Any]:
        """The Optuna parameters :meth:`sample` would suggest to produce ``arch``.

        Raises:
            ValueError: the space cannot express ``arch`` with these options.
        """
        choices = self.unit_choices(arch, options)
        if choices is None:
            raise ValueError(f"{arch.summary()} is not in space {self.name!r} at these options")
        out: dict[str, Any] = {}
        for unit, choice in zip(self.units, choices, strict=True):
            prefix = self.unit_name(unit)
            out[f"{prefix}.type"] = choice.type
            hp = dict(choice.hparams)
            ignored = modules.get(choice.type).ignored_given(hp)
            for name, _ in dict(self.choices)[choice.type]:
                if name in ignored:
                    continue  # not suggested once the others fix it (the registry says which)
                out[f"{prefix}.{choice.type}.{name}"] = hp[name]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "backbone": self.backbone,
            "input": list(self.input),
            "num_classes": self.num_classes,
            "granularity": self.granularity,
            "units": list(self.units),
            "choices": {t: {h: list(v) for h, v in hp} for t, hp in self.choices},
            "size": self.size(),
            "source": self.source,
        }


def _sort_key(v: Any) -> tuple:
    return (v is not None, v if v is not None else 0)


def _match(valid: list[SlotChoice], type_name: str, params: Mapping[str, Any]) -> SlotChoice:
    for c in valid:
        hp = dict(c.hparams)
        if all(hp.get(k) == v for k, v in params.items()):
            return c
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    raise ValueError(f"{type_name}({shown}) cannot be built in this slot")


# ---- loading -------------------------------------------------------------------------
def _builtin_dir():
    return resources.files("attnsearch") / "search_spaces"


def space_names() -> list[str]:
    """Names of the shipped spaces."""
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".yaml"))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Load a shipped space by name, or a YAML file by path, and validate it."""
    from attnsearch.safeio import show

    text_path = str(name_or_path)
    if text_path.endswith((".yaml", ".yml")) or "/" in text_path or os.path.exists(text_path):
        path = Path(text_path)
        if not os.path.isfile(path):  # (Path.is_file raises on a name too long)
            raise SpaceError(f"{show(path)}: no such space file")
        return parse_space(read_text(path, SpaceError), path.stem, show(path))
    res = _builtin_dir() / f"{text_path}.yaml"
    if not res.is_file():
        raise SpaceError(
            f"unknown space {text_path!r}; shipped spaces: {', '.join(space_names())} "
            "(or give a path to a .yaml file)"
        )
    return parse_space(res.read_text(), text_path, f"search_spaces/{text_path}.yaml")


def parse_space(text: str, name: str, source: str) -> SearchSpace:
    """Parse and validate the YAML text of a space."""

    def fail(key: str, reason: str) -> SpaceError:
        return SpaceError(f"{source}: {key}: {reason}")

    from attnsearch.safeio import NestingError, yaml_load

    try:
        data = yaml_load(text)
    except NestingError as e:
        raise SpaceError(f"{source}: not valid YAML ({e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpaceError(f"{source}: not valid YAML{where}") from None
    except ValueError:  # an integer of thousands of digits
        raise SpaceError(f"{source}: not valid YAML (a number too long)") from None
    if not isinstance(data, dict):
        raise SpaceError(f"{source}: must be a mapping of keys, got {type(data).__name__}")
    for key in data:
        if key not in _KEYS:
            raise fail(str(key), f"unknown key; valid: {', '.join(_KEYS)}")
    backbone = data.get("backbone")
    if backbone not in BACKBONES:
        raise fail("backbone", f"unknown {backbone!r}; valid: {', '.join(BACKBONES)}")
    shape = data.get("input", list(DEPLOY_INPUT))
    problem = input_problem(shape) if isinstance(shape, list) else "must be a list [C, H, W]"
    if problem:
        raise fail("input", problem)
    num_classes = data.get("num_classes", DEPLOY_CLASSES)
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or not 1 <= num_classes <= MAX_CLASSES
    ):
        raise fail("num_classes", f"must be an integer 1..{MAX_CLASSES}, got {num_classes!r}")
    granularity = data.get("granularity", "block")
    if granularity not in ("block", "stage"):
        raise fail("granularity", f"must be 'block' or 'stage', got {granularity!r}")
    n_units = BACKBONES[backbone].num_slots if granularity == "block" else 4
    all_units = list(range(n_units)) if granularity == "block" else [1, 2, 3, 4]
    raw_slots = data.get("slots", "all")
    if raw_slots == "all":
        units = all_units
    elif isinstance(raw_slots, list) and raw_slots:
        units = []
        for i, u in enumerate(raw_slots):
            if not isinstance(u, int) or isinstance(u, bool) or u not in all_units:
                what = "block" if granularity == "block" else "stage"
                raise fail(
                    f"slots[{i}]",
                    f"{what} {u!r} does not exist in {backbone} "
                    f"(valid: {all_units[0]}..{all_units[-1]})",
                )
            if u in units:
                raise fail(f"slots[{i}]", f"{u} listed twice")
            units.append(u)
    else:
        raise fail("slots", f"must be 'all' or a non-empty list of indices, got {raw_slots!r}")
    raw_choices = data.get("choices")
    if not isinstance(raw_choices, dict) or not raw_choices:
        raise fail("choices", "must map at least one attention type to its hyperparameters")
    choices = []
    for type_name, hp in raw_choices.items():
        key = f"choices.{type_name}"
        if type_name not in modules.REGISTRY:
            valid = ", ".join(modules.module_names())
            raise fail(key, f"unknown attention type; valid: {valid}")
        hp = hp or {}
        if not isinstance(hp, dict):
            raise fail(key, "must map hyperparameter names to lists of values")
        spec = modules.get(type_name)
        schema = {h.name: h for h in spec.hparams}
        entries = []
        for h_name, values in hp.items():
            if h_name not in schema:
                valid = f"valid: {', '.join(schema)}" if schema else "it takes none"
                raise fail(f"{key}.{h_name}", f"unknown hyperparameter; {valid}")
            if not isinstance(values, list):
                values = [values]
            if not values:
                raise fail(f"{key}.{h_name}", "empty list of values")
            checked = []
            for v in values:
                try:
                    checked.append(schema[h_name].validate(type_name, v))
                except ValueError as e:
                    raise fail(f"{key}.{h_name}", str(e)) from None
            if len(set(checked)) != len(checked):
                raise fail(f"{key}.{h_name}", f"duplicate values in {values}")
            entries.append((h_name, tuple(checked)))
        listed = {h for h, _ in entries}
        for h in spec.hparams:  # unlisted hyperparameters are fixed at their defaults
            if h.name not in listed:
                entries.append((h.name, (h.default,)))
        choices.append((type_name, tuple(entries)))
    description = data.get("description", "")
    space = SearchSpace(
        name=name,
        description=str(description),
        backbone=backbone,
        input=tuple(shape),
        num_classes=num_classes,
        granularity=granularity,
        units=tuple(units),
        choices=tuple(choices),
        source=source,
    )
    # every combination must be buildable in every slot at deploy width
    infos = slot_infos(backbone)
    for type_name, _ in space.choices:
        for choice in space.combos(type_name):
            for unit in space.units:
                for s in space.unit_slots(unit):
                    try:
                        check_choice(choice, infos[s])
                    except ValueError as e:
                        raise fail(
                            f"choices.{type_name}",
                            f"{choice.label()} cannot work in block {s}: {e}",
                        ) from None
    return space
