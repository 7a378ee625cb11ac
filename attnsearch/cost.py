"""One cost model: an architecture's cost is a fixed part plus one term per slot.

Both costs a search can be budgeted in are additive over the residual blocks: the analytic
deploy FLOPs (:class:`FlopsCost`: stem and head, plus each block with its attention) and
the latency a measured table predicts (:class:`LatencyCost`: ``scale × (stem + Σ slots +
head)``). :class:`Cost` is their one abstract base, like Optuna's ``BaseSampler``: an
implementation gives :attr:`Cost.fixed`, :meth:`Cost.slot` and how a value reads; the base
owns everything derived from them, once:

* :meth:`Cost.total` — the integer cost of an architecture (what the budget limits);
* :meth:`Cost.cheapest` / :meth:`Cost.dearest` — the space's extreme architectures under
  the given options (per unit, the choice with the least / most summed slot cost over the
  unit's blocks; ties go to the choice listed first, so the result is deterministic);
* :meth:`Cost.check_budget` — the feasibility check: a budget below the cheapest
  architecture is refused with one :class:`BudgetTooLowError` naming both. A run makes it
  once and hands the :class:`Feasible` it returns on: before anything is created, except
  for a latency run that measures its table in the run folder (checked once the table
  exists; the folder is removed when it fails).

An implementation also says how its cost is told to a study (:meth:`Cost.objective`) and
kept in a trial's record (:meth:`Cost.record`, read back by :meth:`Cost.recorded`), so no
caller asks which cost it holds. Costs are integers in their unit (FLOPs; nanoseconds for
latency), so a budget compares exactly. An instance is a plain object (no closure), so a
searcher holding one can be pickled by Ray Tune. This module imports no torch; the FLOPs
table is imported when a :class:`FlopsCost` is made.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attnsearch.budget import (
    NS_PER_MS,
    Budget,
    format_flops,
    format_latency,
    ms_to_ns,
    ns_to_ms,
)
from attnsearch.errors import InputError

if TYPE_CHECKING:
    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.latency import LatencyTable
    from attnsearch.spaces import Options, SearchSpace

__all__ = ["BudgetTooLowError", "Cost", "Feasible", "FlopsCost", "LatencyCost"]


class BudgetTooLowError(InputError):
    """The budget is below the cheapest architecture of the space."""


@dataclass(frozen=True)
class Feasible:
    """A budget :meth:`Cost.check_budget` accepted, with what the check found.

    Attributes:
        cost: the cost model checked.
        budget: the limit, in the cost's unit.
        cheapest: the space's cheapest architecture under the options checked.
        min_cost: its cost (``<= budget``).
    """

    cost: Cost
    budget: int
    cheapest: Architecture
    min_cost: int


class Cost(abc.ABC):
    """The cost of an architecture: :attr:`fixed` plus :meth:`slot` of each block.

    Calling an instance is :meth:`total`, so it serves wherever a cost function does.
    """

    kind: ClassVar[str]  # the budget kind that limits it (attnsearch.budget.Budget.kind)
    cheapest_word: ClassVar[str] = "cheapest"  # how errors name the cheapest architecture

    @property
    @abc.abstractmethod
    def fixed(self) -> float:
        """The part every architecture pays (stem and head), in the cost's unit."""

    @abc.abstractmethod
    def slot(self, index: int, choice: SlotChoice) -> float:
        """The cost of block ``index`` holding ``choice``, in the cost's unit."""

    @abc.abstractmethod
    def show(self, value: int) -> str:
        """A cost (or budget) in this unit as a user reads it (``4.14 GFLOPs``, ``2.5 ms``)."""

    @abc.abstractmethod
    def limit(self, budget: Budget) -> int:
        """``budget`` in this cost's unit.

        Raises:
            InputError: a budget of another kind.
        """

    def describe(self, value: int) -> str:
        """:meth:`show` with what an error message needs to trust the number."""
        return self.show(value)

    @abc.abstractmethod
    def objective(self, value: int) -> float:
        """The second objective told to the study for a candidate of cost ``value``."""

    @abc.abstractmethod
    def record(self, value: int) -> dict[str, float]:
        """The trial-record attributes that hold a cost of ``value``, beside the analytic
        FLOPs every trial records as ``flops`` (:class:`attnsearch.rundir.TrialRecord`)."""

    @abc.abstractmethod
    def recorded(self, attrs: dict) -> int:
        """A trial's cost read back from its record attributes (what :meth:`record` and the
        FLOPs wrote)."""

    def total(self, arch: Architecture) -> int:
        """The cost of ``arch``: ``fixed + Σ slot``, rounded to the unit."""
        return round(self.fixed + sum(self.slot(i, c) for i, c in enumerate(arch.slots)))

    def __call__(self, arch: Architecture) -> int:
        return self.total(arch)

    def cheapest(self, space: SearchSpace, options: Options) -> Architecture:
        """The architecture of ``space`` with the lowest cost, choosing from ``options``
        (per unit: type -> allowed choices, e.g. ``space.options(width)``)."""
        return self._extreme(space, options, min)

    def dearest(self, space: SearchSpace, options: Options) -> Architecture:
        """The architecture of ``space`` with the highest cost, choosing from ``options``."""
        return self._extreme(space, options, max)

    def _extreme(
        self,
        space: SearchSpace,
        options: Options,
        pick: Callable[..., SlotChoice],
    ) -> Architecture:
        # slots are independent, so the extreme is per unit; unsearched slots stay plain
        from attnsearch.architecture import Architecture

        slots = list(Architecture.plain(space.backbone).slots)
        for unit, per_type in zip(space.units, options, strict=True):
            members: Sequence[int] = space.unit_slots(unit)
            candidates = [c for cs in per_type.values() for c in cs]
            best = pick(candidates, key=lambda c: sum(self.slot(s, c) for s in members))
            for s in members:
                slots[s] = best
        return Architecture(space.backbone, tuple(slots), space.num_classes, space.input)

    def check_budget(self, budget: Budget | int, space: SearchSpace, options: Options) -> Feasible:
        """Refuse a budget below the cheapest architecture of ``space`` under ``options``.

        Args:
            budget: a parsed budget of this cost's kind, or a limit in its unit.
            space: the search space.
            options: per unit: type -> allowed choices (``space.options(width)``).

        Returns:
            The accepted budget, the cheapest architecture and its cost.

        Raises:
            BudgetTooLowError: one line naming the budget and the cheapest cost.
            InputError: a budget of another kind.
        """
        limit = self.limit(budget) if isinstance(budget, Budget) else int(budget)
        cheapest = self.cheapest(space, options)
        low = self.total(cheapest)
        if low > limit:
            raise BudgetTooLowError(
                f"budget {self.show(limit)} is below the {self.cheapest_word} architecture of "
                f"space {space.name!r} ({self.describe(low)})"
            )
        return Feasible(self, limit, cheapest, low)

    def _kind_of(self, budget: Budget) -> None:
        if budget.kind != self.kind:
            raise InputError(f"budget {budget} is a {budget.kind} budget, not a {self.kind} one")


class FlopsCost(Cost):
    """The analytic deploy FLOPs of an architecture of ``space`` (the default cost).

    Args:
        space: its backbone, deploy input shape and classes decide the counts.
    """

    kind = "flops"

    def __init__(self, space: SearchSpace):
        from attnsearch.flops.analytic import cost_table

        self.table = cost_table(space.backbone, space.input, space.num_classes)

    @property
    def fixed(self) -> int:
        return self.table.stem + self.table.head

    def slot(self, index: int, choice: SlotChoice) -> int:
        return self.table.slot(index, choice)

    def show(self, value: int) -> str:
        return format_flops(value)

    def describe(self, value: int) -> str:
        return f"{format_flops(value)} = {value:,} FLOPs"

    def limit(self, budget: Budget) -> int:
        self._kind_of(budget)
        return int(budget.value)

    def objective(self, value: int) -> float:
        return float(value)

    def record(self, value: int) -> dict[str, float]:
        return {}  # the cost is the analytic FLOPs every trial records

    def recorded(self, attrs: dict) -> int:
        return int(attrs["flops"])


class LatencyCost(Cost):
    """A latency table's predicted latency of an architecture, in integer nanoseconds.

    Args:
        table: the measured table (:class:`attnsearch.latency.LatencyTable`).
    """

    kind = "latency"
    cheapest_word = "fastest"

    def __init__(self, table: LatencyTable):
        self.table = table

    @property
    def fixed(self) -> float:
        t = self.table
        return t.scale * (t.stem_ms + t.head_ms) * NS_PER_MS

    def slot(self, index: int, choice: SlotChoice) -> float:
        return self.table.scale * self.table.entry(index, choice) * NS_PER_MS

    def total(self, arch: Architecture) -> int:
        # the table's own sum (what runs have always recorded); equal to fixed + Σ slot up
        # to float rounding
        return ms_to_ns(self.table.predict(arch))

    def show(self, value: int) -> str:
        return format_latency(ns_to_ms(value))

    def describe(self, value: int) -> str:
        s = self.table.settings
        return f"{format_latency(ns_to_ms(value))} predicted on {s.device}, batch {s.batch}"

    def limit(self, budget: Budget) -> int:
        self._kind_of(budget)
        return ms_to_ns(budget.value)

    def objective(self, value: int) -> float:
        return ns_to_ms(value)  # told in milliseconds, as the record holds it

    def record(self, value: int) -> dict[str, float]:
        return {"latency_ms": ns_to_ms(value)}

    def recorded(self, attrs: dict) -> int:
        return ms_to_ns(attrs["latency_ms"])
