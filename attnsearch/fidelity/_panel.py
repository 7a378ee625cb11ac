"""The panel: the uniform networks and random candidates spread over the FLOPs range."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from attnsearch.errors import InputError

POOL_PER_MEMBER = 40  # random candidates drawn per random panel slot before spreading
BOOTSTRAP = 1000  # bootstrap resamples for the intervals of τ and ρ
TOP_K = 5  # the top-k overlap reported
STAGES = ("proxy", "reference")  # the two kinds of run of a panel


class FidelityError(InputError):
    """Bad fidelity settings; one line."""


@dataclass(frozen=True)
class PanelMember:
    """One architecture of the panel.

    Attributes:
        name: ``uniform-<type>`` or ``random-<i>``.
        kind: ``"uniform"`` or ``"random"``.
        arch: the architecture.
        flops: deploy FLOPs (analytic, the search's count).
        params: deploy parameters.
    """

    name: str
    kind: str
    arch: Any
    flops: int
    params: int


# ---- the panel ---------------------------------------------------------------------------
def build_panel(
    space,
    width: float,
    size: int = 24,
    seed: int = 0,
    budget: int | None = None,
    uniform: Sequence[str] | None = None,
) -> list[PanelMember]:
    """The seeded panel: uniform networks first, then random ones spread over FLOPs.

    Args:
        space: a :class:`~attnsearch.spaces.SearchSpace`.
        width: the proxy width (choices that cannot be built at it are left out).
        size: number of architectures (the uniform ones count; at least 3).
        seed: fixes the random members.
        budget: leave out architectures above this many FLOPs (``None``: no limit).
        uniform: a uniform-only panel of these attention types, in this order (``size``
            and ``seed`` are then unused): the staged go/no-go check (:func:`stage_a`).
    """
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.flops.analytic import cost_table

    if size < 3:
        raise FidelityError(f"the panel needs at least 3 architectures, got {size}")
    table = cost_table(space.backbone, space.input, space.num_classes)
    options = space.options(width)
    plain = Architecture.plain(space.backbone, space.num_classes, space.input)

    def make(choices: Sequence[SlotChoice]) -> Architecture:
        slots = list(plain.slots)
        for unit, choice in zip(space.units, choices, strict=True):
            for s in space.unit_slots(unit):
                slots[s] = choice
        return Architecture(space.backbone, tuple(slots), space.num_classes, space.input)

    members: list[tuple[str, str, Architecture]] = []
    if uniform is not None:
        known = [t for t, _ in space.choices]
        if len(set(uniform)) != len(uniform) or len(uniform) < 3:
            raise FidelityError(
                f"--uniform needs 3 or more different types, got {','.join(uniform)!r}"
            )
        for type_name in uniform:
            choice = _uniform_choice(type_name, options) if type_name in known else None
            if choice is None:
                raise FidelityError(
                    f"--uniform {type_name}: not a choice of every slot of space "
                    f"{space.name!r} at width {width:g} (types: {', '.join(known)})"
                )
            members.append((f"uniform-{type_name}", "uniform", make([choice] * len(space.units))))
        size = len(members)
    for type_name, _ in space.choices if uniform is None else ():
        choice = _uniform_choice(type_name, options)
        if choice is None:
            continue
        arch = make([choice] * len(space.units))
        if budget is None or table.total(arch.slots) <= budget:
            members.append((f"uniform-{type_name}", "uniform", arch))
    members = members[:size]
    n_random = size - len(members)
    if n_random:
        rng = random.Random(seed)
        seen = {a.digest() for _, _, a in members}
        pool: dict[str, tuple[int, Architecture]] = {}
        for _ in range(POOL_PER_MEMBER * n_random):
            arch = make(_random_choices(options, rng))
            flops = table.total(arch.slots)
            if (budget is None or flops <= budget) and arch.digest() not in seen:
                pool.setdefault(arch.digest(), (flops, arch))
        picked = _spread(sorted(pool.values(), key=lambda fa: (fa[0], fa[1].digest())), n_random)
        members += [(f"random-{i}", "random", a) for i, a in enumerate(picked)]
    if len(members) < 3:
        raise FidelityError(
            f"only {len(members)} architecture(s) of space {space.name!r} fit; "
            "raise the budget or the width"
        )
    return [
        PanelMember(name, kind, arch, table.total(arch.slots), _params(arch))
        for name, kind, arch in members
    ]


def _uniform_choice(type_name: str, options):
    """The type's default choice if every unit allows it, else its first allowed in all."""
    from attnsearch.architecture import SlotChoice

    per_unit = [opts.get(type_name, []) for opts in options]
    if not all(per_unit):
        return None
    default = SlotChoice.make(type_name)
    if all(default in cs for cs in per_unit):
        return default
    common = [c for c in per_unit[0] if all(c in cs for cs in per_unit[1:])]
    return common[0] if common else None


def _random_choices(options, rng: random.Random) -> list:
    """One choice per unit. A per-candidate attention density and per-candidate type
    weights (skewed, so one or two types often dominate) spread the FLOPs to the ends."""
    from attnsearch import modules

    density = rng.random()
    types = sorted({t for opts in options for t in opts if not modules.get(t).identity})
    weight = {t: rng.random() ** 4 for t in types}
    out = []
    for opts in options:
        attn = [t for t in opts if not modules.get(t).identity]
        plain = [c for t, cs in opts.items() if modules.get(t).identity for c in cs]
        if attn and (rng.random() < density or not plain):
            t = rng.choices(attn, weights=[weight[a] + 1e-9 for a in attn])[0]
            out.append(rng.choice(opts[t]))
        else:
            out.append(plain[0])
    return out


def _spread(pool: list[tuple[int, Any]], n: int) -> list[Any]:
    """``n`` members of a FLOPs-sorted pool, nearest to evenly spaced FLOPs targets."""
    if len(pool) <= n:
        return [a for _, a in pool]
    lo, hi = pool[0][0], pool[-1][0]
    taken: set[int] = set()
    for i in range(n):
        target = lo + (hi - lo) * (i + 0.5) / n
        best = min(
            (j for j in range(len(pool)) if j not in taken),
            key=lambda j: (abs(pool[j][0] - target), j),
        )
        taken.add(best)
    return [pool[j][1] for j in sorted(taken)]


def _params(arch) -> int:
    """Deploy parameters, counted on the meta device (no memory, no init)."""
    import torch

    from attnsearch.backbones import build_network

    with torch.device("meta"):
        model = build_network(arch, stem="deploy")
    return sum(p.numel() for p in model.parameters())
