"""Resume: settle the storage after a driver stopped, and say what to run again.

The trials to run again are derived from the storage each time they are needed (never kept
only in memory): a trial marked FAIL with ``fail_kind`` INTERRUPTED is pending until a
trial that re-runs it (``resumed_from``) exists in the storage and did not end as
NEVER_STARTED. A second crash before a re-run starts, or more re-runs than remaining
trials, therefore loses nothing; their checkpoints stay under ``tune/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from attnsearch.rundir import FailKind, NoCheckpointError, RunDir, TrialRecord


@dataclass(frozen=True)
class Rerun:
    """A trial interrupted while it trained, to run again as a new trial."""

    trial: int  # the interrupted trial's number
    params: dict[str, Any]  # its Optuna parameters (the same architecture)
    checkpoint: str | None  # its last checkpoint folder, if one was saved


def reconcile(run: RunDir, study) -> list[Rerun]:
    """Make the storage consistent after a driver stopped; return the trials to run again.

    Optuna trials still RUNNING were either training when the driver stopped (an execution
    was recorded): they are marked FAIL with ``fail_kind`` INTERRUPTED, to run again as new
    trials with the same parameters (from their last checkpoint where one exists; see
    :func:`pending_reruns`); or they were asked but never started ("zombies"): marked FAIL
    with NEVER_STARTED. Completed trials are never touched.
    """
    executed = run.executed_trials()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        record = TrialRecord.of(t)
        if t.number in executed and record.config is not None:
            kind = FailKind.INTERRUPTED
            reason = "interrupted: the driver stopped while it trained; run again as a new trial"
        else:
            kind = FailKind.NEVER_STARTED
            reason = "asked but never started: the driver stopped first"
        TrialRecord.set_stored(study, t, fail_kind=kind, fail_reason=reason)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return pending_reruns(run, study)


def pending_reruns(run: RunDir, study) -> list[Rerun]:
    """The interrupted search trials that no trial in the storage re-runs yet, oldest first.

    A re-run that was asked but never started does not count (its trial is pending again);
    a re-run enqueued but not yet asked (WAITING) does. Each one's checkpoint is looked up
    under ``run`` now, so a moved or copied run folder resumes from its own files.
    """
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    taken = set()
    for t in trials:
        record = TrialRecord.of(t)
        if record.resumed_from is None or record.copied:  # a copy's numbers are another run's
            continue
        if t.state == optuna.trial.TrialState.FAIL and record.fail_kind == FailKind.NEVER_STARTED:
            continue
        taken.add(record.resumed_from)
    out = []
    for t in trials:
        if t.state != optuna.trial.TrialState.FAIL or t.number in taken:
            continue
        record = TrialRecord.of(t)
        if record.fail_kind != FailKind.INTERRUPTED or record.copied:  # another run's stop
            continue
        if record.role is not None:  # a reference or repeat: the driver asks it again itself
            continue
        out.append(Rerun(t.number, dict(t.params), _checkpoint(run, t, by_number)))
    return out


def _checkpoint(run: RunDir, trial, by_number: dict) -> str | None:
    """The trial's last checkpoint folder; failing that, that of the trial it re-ran."""
    seen = set()
    while trial is not None and trial.number not in seen:
        seen.add(trial.number)
        record = TrialRecord.of(trial)
        try:
            path = run.find_checkpoint(trial.number, record.tune_trial_id)
            return str(path.parent if path.is_file() else path)
        except (NoCheckpointError, OSError):
            pass
        trial = by_number.get(record.resumed_from) if record.resumed_from is not None else None
    return None
