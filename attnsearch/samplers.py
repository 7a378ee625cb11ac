"""The Optuna side of a search: the samplers by name (:func:`make_sampler`), the constraint
key every trial carries, and :func:`warm_start` (copy an earlier run's finished trials on the
same space into a study). :mod:`attnsearch.proposal` re-exports them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from attnsearch.errors import InputError
from attnsearch.rundir import TrialRecord
from attnsearch.settings import SAMPLERS  # the names, defined with the settings (torch-free)

if TYPE_CHECKING:
    import optuna

    from attnsearch.cost import Cost
    from attnsearch.spaces import Options, SearchSpace

__all__ = ["CONSTRAINT", "SAMPLERS", "make_sampler", "warm_start"]


class _Costs(Protocol):
    """What :func:`warm_start` asks of a :class:`attnsearch.proposal.Proposer` (named by
    its parts, so that this module does not import the one that re-exports it)."""

    space: SearchSpace
    options: Options
    budget: int
    cost_fn: Cost  # the run's cost (FLOPs or ns)
    flops_fn: Callable[[Any], float]  # FLOPs, whatever the run's cost


CONSTRAINT = "flops_over_budget"  # Optuna constraint key: cost - budget (feasible when <= 0)


def make_sampler(name: str, seed: int, trials: int, concurrency: int = 1):
    """The Optuna sampler for ``name``, sized to a run of ``trials`` trained trials.

    * ``random`` — independent uniform sampling.
    * ``nsga2`` — NSGA-II, population ``trials // 3`` clamped to 4..50.
    * ``tpe`` — multivariate TPE with ``group=True`` (conditional hyperparameters are
      modelled jointly with their type), ``constant_liar`` when trials run concurrently;
      ``trials // 3`` (2..10) random start-up trials.
    * ``tpe-mv`` — multivariate TPE without ``group``: conditional hyperparameters by
      univariate TPE; about 6× cheaper per ask than ``tpe`` on the 16-slot space.
    * ``gp`` — Optuna's GPSampler (categorical kernel); conditional hyperparameters outside
      the intersection space are drawn at random.
    """
    import optuna

    startup = max(2, min(10, trials // 3))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, trials // 3))
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=startup,
            multivariate=True,
            group=True,
            constant_liar=concurrency > 1,
        )
    if name == "tpe-mv":
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=startup,
            multivariate=True,
            constant_liar=concurrency > 1,
        )
    if name == "gp":
        try:
            import scipy  # noqa: F401  (GPSampler's acquisition optimiser needs it)
        except ImportError:
            raise InputError("sampler 'gp' needs scipy, which is not installed") from None
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=startup, warn_independent_sampling=False
        )
    raise InputError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


def warm_start(
    study: optuna.Study,
    source: optuna.Study,
    space: SearchSpace | None = None,
    options: Options | None = None,
    *,
    proposer: _Costs | None = None,
) -> int:
    """Copy ``source``'s finished trials into ``study``; returns how many were copied.

    Both must search the same space: with ``space`` and ``options`` given (or a
    ``proposer``, which brings both), every copied trial's parameters must be exactly what
    :meth:`SearchSpace.sample` asks for (same names, values among the options); without
    them, only a distribution that differs for a shared name is caught. Copied trials keep
    their state, values (real measurements only: trials never trained were stored without
    values and are copied so), constraints and user attributes, and record where they came
    from (``warm_start_from``). With a ``proposer``, each copied trial is costed again by
    it: its constraint is against this study's budget and its second objective is this
    study's cost (FLOPs or latency), whatever the source used.

    Raises:
        InputError: the source searched a different space.
    """
    import optuna

    if proposer is not None:
        space, options = proposer.space, proposer.options
    ours = {k: v for t in study.get_trials(deepcopy=False) for k, v in t.distributions.items()}
    copied = []
    for t in source.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        for k, dist in t.distributions.items():
            if k in ours and ours[k] != dist:
                raise InputError(
                    f"warm start: parameter {k!r} differs between the runs; both must use the "
                    "same space and width"
                )
        if space is not None and t.params:
            fixed = optuna.trial.FixedTrial(dict(t.params))
            try:
                space.sample(fixed, options)
                same = fixed.params == t.params
            except ValueError:
                same = False
            if not same:
                raise InputError(
                    f"warm start: trial {t.number} of {source.study_name!r} is not in space "
                    f"{space.name!r} at this width; both runs must use the same space and width"
                )
        attrs = dict(t.user_attrs)  # copied as they are, unknown ones too
        attrs.update(TrialRecord.attrs(warm_start_from=f"{source.study_name}#{t.number}"))
        values = t.values if t.state == optuna.trial.TrialState.COMPLETE else None
        system = {k: v for k, v in t.system_attrs.items() if k.startswith("constraints")}
        if proposer is not None and t.params:
            arch = space.sample(optuna.trial.FixedTrial(dict(t.params)), options)
            cost = int(proposer.cost_fn(arch))
            attrs.pop("latency_ms", None)
            flops = int(proposer.flops_fn(arch))
            attrs.update(TrialRecord.attrs(flops=flops, **proposer.cost_fn.record(cost)))
            system = {f"constraints:{CONSTRAINT}": float(cost - proposer.budget)}
            if values is not None:
                values = [values[0], proposer.cost_fn.objective(cost)]
        copied.append(
            optuna.trial.create_trial(
                state=t.state,
                values=values,
                params=t.params,
                distributions=t.distributions,
                user_attrs=attrs,
                system_attrs=system,
                intermediate_values=t.intermediate_values,
            )
        )
    study.add_trials(copied)
    return len(copied)
