"""The search: Optuna samples through Ray Tune, multi-objective, under a hard FLOPs budget.

Objectives: ``accuracy`` (max) and ``flops`` (min); the budget is a constraint, so
``study.best_trials`` holds only feasible, non-dominated trials. Private parts, one role
each: ``_settings`` (RunSettings), ``_samplers``, ``_budgeted`` (ask → check budget →
tell, no Ray), ``_searcher`` (its Ray Tune wrapper), ``_worker`` (one trial's training,
and its Tune trainable), ``_ray`` (the Ray session), ``_resume`` (reconcile a stopped
run), ``_driver`` (:func:`run_search`).

Only the settings are imported eagerly (the CLI reads its defaults from them); the rest
imports Ray and Optuna on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from attnsearch.proxy import ProxyConfig
from attnsearch.search._settings import SAMPLERS, RunSettings

__all__ = [
    "SAMPLERS",
    "BudgetedSearch",
    "ProxyConfig",
    "Rerun",
    "RunSettings",
    "TrialOutcome",
    "kill_stray_ray",
    "make_sampler",
    "reconcile",
    "run_search",
    "run_trial",
]

_LAZY = {
    "BudgetedSearch": "_budgeted",
    "Rerun": "_resume",
    "TrialOutcome": "_worker",
    "kill_stray_ray": "_ray",
    "make_sampler": "_samplers",
    "reconcile": "_resume",
    "run_search": "_driver",
    "run_trial": "_worker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"attnsearch.search.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'attnsearch.search' has no attribute {name!r}")
