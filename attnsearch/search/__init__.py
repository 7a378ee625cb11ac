"""The search: Optuna samples through Ray Tune, multi-objective, under a hard budget (FLOPs
or predicted latency).

Objectives: ``accuracy`` (max) and the cost (min): ``flops``, or ``latency_ms`` with a
latency budget; the budget is a constraint, so ``study.best_trials`` holds only feasible,
non-dominated trials. The ask → budget → tell core (no Ray) is :mod:`attnsearch.proposal`'s,
the samplers :mod:`attnsearch.samplers`'; the settings are :mod:`attnsearch.settings`'s (named here
too). Private parts, one role each: ``_searcher`` (the Proposer inside Ray Tune),
``_worker`` (one trial's training, and its Tune trainable), ``_ray`` (start or connect to
Ray), ``_session`` (the Ray session's record, cleanup after a crash), ``_resume``
(reconcile a stopped run), ``_extras`` (which trials count; references and repeats),
``_setup`` (scheduler, cost model, warm start), ``_driver`` (:func:`run_search`).

Only the settings are imported eagerly (the CLI reads its defaults from them); the rest
imports Ray and Optuna on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from attnsearch.settings import POLICIES, SAMPLERS, ProxyConfig, RunSettings

__all__ = [
    "POLICIES",
    "SAMPLERS",
    "Proposer",
    "ProxyConfig",
    "Rerun",
    "RunSettings",
    "TrialOutcome",
    "kill_stray_ray",
    "make_sampler",
    "probe_address",
    "reconcile",
    "run_search",
    "run_trial",
]

_LAZY = {
    "Rerun": "_resume",
    "TrialOutcome": "_worker",
    "kill_stray_ray": "_session",
    "probe_address": "_ray",
    "reconcile": "_resume",
    "run_search": "_driver",
    "run_trial": "_worker",
}


def __getattr__(name: str) -> Any:
    if name in ("Proposer", "make_sampler"):
        return getattr(import_module("attnsearch.proposal"), name)
    if name in _LAZY:
        return getattr(import_module(f"attnsearch.search.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'attnsearch.search' has no attribute {name!r}")
