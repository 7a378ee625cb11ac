"""The Optuna sampler factory."""

from __future__ import annotations

from attnsearch.errors import InputError
from attnsearch.search._settings import SAMPLERS


def make_sampler(name: str, seed: int, trials: int):
    """The Optuna sampler for ``name``; NSGA-II's population is sized to the run."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, trials // 3))
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(2, min(10, trials // 3)), multivariate=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
