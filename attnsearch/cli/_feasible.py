"""Whether a new run's budget can be met, checked before its folder exists (``run``), and
the latency table a latency budget is predicted from (given, or measured on this machine).
"""

from __future__ import annotations

from attnsearch.budget import Budget, format_latency
from attnsearch.cli._terminal import term
from attnsearch.errors import InputError

__all__ = [
    "build_latency_table",
    "check_budget",
    "check_latency_budget",
    "load_latency_table",
]


def check_budget(budget: Budget, space, width: float, latency_table: str | None):
    """Refuse a budget no architecture of ``space`` at proxy ``width`` meets (a latency
    budget without a table: a quick bound, the stem and head alone; the table is measured
    later, in the run folder, and checked then by :func:`check_latency_budget`).

    Returns:
        ``(table, checked)``: the given latency table, loaded and checked (``None``: none
        given), and the run's feasibility check (:class:`attnsearch.cost.Feasible`;
        ``None`` until a latency run's table exists).
    """
    from attnsearch.cost import FlopsCost

    if not budget.is_latency:
        if latency_table:
            raise InputError(
                "--latency-table goes with a latency budget (e.g. --budget 25ms); "
                f"{budget.text or str(budget)!r} is FLOPs"
            )
        return None, FlopsCost(space).check_budget(budget, space, space.options(width))
    if not latency_table:  # a quick bound first: a table takes minutes to measure
        check_latency_floor(space, budget.value)
        return None, None
    table = load_latency_table(latency_table, space)
    return table, check_latency_budget(table, space, width, budget)


def _latency_settings():
    """What a run's latency table is measured under: this machine's device, batch 1."""
    from attnsearch.latency import Settings
    from attnsearch.settings import default_device

    return Settings(device=default_device())


def load_latency_table(path, space):
    """A given --latency-table, checked against this machine's device kind and the space."""
    from attnsearch.latency import LatencyTable

    s = _latency_settings()
    table = LatencyTable.load(path, device=s.device, input=space.input, dtype=s.dtype)
    table.check_space(space)  # refuses a table without every choice of the space
    return table


def build_latency_table(path, space):
    from attnsearch.cli.latency_table import _progress
    from attnsearch.latency import load_or_build

    term.note(f"measuring a latency table for space {space.name} on this machine ({path.name})")
    with _progress(term, True) as progress:
        return load_or_build(path, space, _latency_settings(), progress=progress("measuring"))


def check_latency_floor(space, budget_ms: float) -> None:
    """Refuse a latency budget below what the stem and head alone take on this machine
    (every architecture runs both), before a whole table is measured."""
    from attnsearch.latency import floor_ms

    s = _latency_settings()
    floor = floor_ms(space, s)
    if floor > budget_ms:
        raise InputError(
            f"budget {format_latency(budget_ms)} is below what the stem and head of "
            f"{space.backbone} alone take on this machine ({format_latency(floor)} measured "
            f"on {s.device}, batch {s.batch}): no architecture of space {space.name!r} can "
            "meet it"
        )


def check_latency_budget(table, space, width: float, budget: Budget):
    """The latency run's feasibility check, on its table (:class:`attnsearch.cost.Feasible`)."""
    from attnsearch.cost import LatencyCost

    return LatencyCost(table).check_budget(budget, space, space.options(width))
