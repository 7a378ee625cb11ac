"""The study's own trials: which count towards ``--trials`` and as failures, and the extra
trials (references, repeats) a run asks for."""

from __future__ import annotations

from typing import Any

import optuna

from attnsearch.rundir import TrialRecord
from attnsearch.settings import RunSettings


def done_count(study, *, extras: bool = False) -> int:
    """Search trials whose training finished: complete (trained) or stopped early by ASHA.

    References and repeats never count towards ``--trials``; ``extras=True`` counts them
    too (progress of any kind). Trials copied by a warm start are another run's and never
    count.
    """
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("trained")
        and (extras or not t.user_attrs.get("role"))
        and not TrialRecord.of(t).copied
        and t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )


def _enqueue(study, params: dict, **attrs: Any) -> None:
    """Store one extra trial (a reference or a repeat) as WAITING: the searcher's next ask
    pops it, so it trains like any trial; ``seed`` records its trial seed (its number)."""
    study.enqueue_trial(params, user_attrs=TrialRecord.attrs(**attrs), skip_if_exists=False)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    newest = max(waiting, key=lambda t: t.number)
    TrialRecord.set_stored(study, newest, seed=newest.number)


def enqueue_extras(study, settings: RunSettings, space, references, *, search_done: bool) -> int:
    """Enqueue the references (``settings.repeats`` seeds each) and, once the search's own
    trials are done, the repeats of the front and of the trials within noise of it.

    Idempotent: what to ask is derived from the storage (trials done, waiting, running, or
    failed by themselves count as asked), so a resumed run never asks twice.
    Returns how many trials were enqueued.
    """
    from attnsearch.results import ROLE_REFERENCE, ROLE_REPEAT, measurements, repeats_needed

    options = space.options(settings.width)
    ms = measurements(study)
    n = 0
    for ref in references:
        for _ in range(settings.repeats - ms.planned_references.get(ref.name, 0)):
            params = space.params(ref.architecture, options)
            _enqueue(
                study, params, role=ROLE_REFERENCE, reference=ref.name, paper=ref.paper,
                fits=ref.fits,
            )  # fmt: skip
            n += 1
    if search_done:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        for number, missing in repeats_needed(study, settings.repeats).items():
            for _ in range(missing):
                _enqueue(study, dict(trials[number].params), role=ROLE_REPEAT, repeat_of=number)
                n += 1
    return n


def fail_count(study) -> int:
    """This run's trials that failed by themselves (interruptions by the driver do not
    count, nor failures copied by a warm start)."""
    records = (
        TrialRecord.of(t)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    )
    return sum(1 for r in records if r.counts_as_failure and not r.copied)
