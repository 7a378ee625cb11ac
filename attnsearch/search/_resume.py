"""Resume: settle the storage after a driver stopped, and say what to run again."""

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
    was recorded): they are marked failed and queued to run again, as new trials with the
    same parameters, from their last checkpoint where one exists; or they were asked but
    never started ("zombies"): they are marked failed. Completed trials are never touched.
    """
    executed = run.executed_trials()
    reruns = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        record = TrialRecord.of(t)
        if t.number in executed and record.config is not None:
            checkpoint = None
            try:
                path = run.find_checkpoint(t.number, record.tune_trial_id)
                checkpoint = str(path.parent if path.is_file() else path)
            except (NoCheckpointError, OSError):
                pass
            reruns.append(Rerun(t.number, dict(t.params), checkpoint))
            kind = FailKind.INTERRUPTED
            reason = "interrupted: the driver stopped while it trained; run again as a new trial"
        else:
            kind = FailKind.NEVER_STARTED
            reason = "asked but never started: the driver stopped first"
        TrialRecord.set_stored(study, t, fail_kind=kind, fail_reason=reason)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return reruns
