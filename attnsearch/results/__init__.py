"""What a search's study yields (DESIGN.md §6): the Optuna storage, trials.csv, pareto.*.

The Optuna storage is the single source of truth; every other file is derived from it
and can be rewritten at any time (``attnsearch pareto NAME`` does, for running searches).
Paths and run settings come from :class:`attnsearch.rundir.RunDir`, which owns the folder.
"""

from __future__ import annotations

from attnsearch.results._front import (
    pareto_members,
    reference_entries,
    signal,
    unseparated,
    verdict,
)
from attnsearch.results._measure import (
    Measured,
    Measurements,
    Noise,
    cost_of,
    front_on_means,
    measurements,
    repeats_needed,
    within_noise,
)
from attnsearch.results._plot import budget_label, plot_pareto
from attnsearch.results._storage import (
    ROLE_REFERENCE,
    ROLE_REPEAT,
    ROLE_TEXT_COPY,
    open_study,
    storage_for,
    trial_rows,
)
from attnsearch.results._storage import (
    _accuracy as _accuracy,  # export reads a trial's accuracy with it
)
from attnsearch.results._write import write_results
from attnsearch.rundir import ResultsError

__all__ = [
    "ROLE_REFERENCE",
    "ROLE_REPEAT",
    "ROLE_TEXT_COPY",
    "Measured",
    "Measurements",
    "Noise",
    "ResultsError",
    "budget_label",
    "cost_of",
    "front_on_means",
    "measurements",
    "open_study",
    "pareto_members",
    "plot_pareto",
    "reference_entries",
    "repeats_needed",
    "signal",
    "storage_for",
    "trial_rows",
    "unseparated",
    "verdict",
    "within_noise",
    "write_results",
]
