"""What a run starts from: the early-stopping scheduler, the cost function, the line on the
references left out, and a warm start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attnsearch.errors import InputError
from attnsearch.rundir import RunDir
from attnsearch.settings import RunSettings

if TYPE_CHECKING:
    from attnsearch.cost import Cost


def _scheduler(settings: RunSettings):
    if not settings.early_stop:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        metric="accuracy",
        mode="max",
        time_attr="epoch",
        max_t=settings.epochs,
        grace_period=1,
        reduction_factor=2,
    )


def run_cost(settings: RunSettings, run_dir, space):
    """The run's cost model and its budget in the cost's unit: analytic FLOPs, or the
    latency table's prediction in nanoseconds. A relative table path is inside the run
    folder (a table built for the run)."""
    from pathlib import Path

    from attnsearch.cost import FlopsCost, LatencyCost
    from attnsearch.latency import LatencyTable

    budget = settings.budget
    if budget is None:
        raise InputError("a search needs a budget (e.g. --budget 4GFLOPs)")
    if budget.is_latency:  # checked against the device and the space by `run` already
        cost: Cost = LatencyCost(LatencyTable.load(Path(run_dir) / settings.latency_table))
    else:
        cost = FlopsCost(space)
    return cost, cost.limit(budget)


def left_out_text(left: dict, width: float, cost: Cost) -> str | None:
    """One line on the papers' networks a run does not train, and why (``None``: none);
    costs in ``left`` are in ``cost``'s unit and read as it shows them."""
    parts = []
    if left["over_budget"]:
        names = ", ".join(f"{n} {cost.show(c)}" for n, c in left["over_budget"])
        parts.append(f"over the budget: {names} (--references all trains them as context)")
    if left["proxy_width"]:
        names = ", ".join(n for n, _ in left["proxy_width"])
        parts.append(f"cannot be built at proxy width {width:g}: {names} (--width 1)")
    if left["not_in_space"]:
        parts.append("not in this space: " + ", ".join(n for n, _ in left["not_in_space"]))
    return "references left out — " + "; ".join(parts) if parts else None


def seed_from(source_dir: str, study, proposer) -> int:
    """Copy the finished trials of the run in ``source_dir`` into ``study`` (a warm start,
    :func:`attnsearch.proposal.warm_start`); they are history for the sampler only."""
    from pathlib import Path

    from attnsearch.proposal import warm_start
    from attnsearch.results import open_study

    path = Path(source_dir)
    source = open_study(path, RunDir.open(path.parent, path.name).record.study_name)
    return warm_start(study, source, proposer=proposer)
