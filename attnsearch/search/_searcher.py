"""The Ray Tune searcher: :class:`attnsearch.search._budgeted.BudgetedSearch` inside
Ray Tune's ``OptunaSearch``, so over-budget candidates never reach Ray."""

from __future__ import annotations

from ray.tune.search.optuna import OptunaSearch

from attnsearch.rundir import TrialRecord
from attnsearch.search._budgeted import BudgetedSearch


class BudgetedOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch around :class:`BudgetedSearch`: over-budget candidates never
    reach Ray. Same arguments as :class:`BudgetedSearch` (less ``study``) plus
    OptunaSearch's ``sampler``, ``study_name`` and ``storage``."""

    def __init__(self, space, options, budget, table, *, epochs=1, max_attempts=10_000, **kwargs):
        self.space_def = space
        self.options = options
        super().__init__(
            space=self._define_by_run,
            metric=["accuracy", "flops"],
            mode=["max", "min"],
            **kwargs,
        )
        self.core = BudgetedSearch(
            self._ot_study, space, options, budget, table, epochs=epochs, max_attempts=max_attempts
        )
        self.timeouts: dict[str, str] = {}  # trial id -> why the time limit killed it

    def _define_by_run(self, trial):
        self.space_def.sample(trial, self.options)

    @property
    def infeasible(self) -> int:  # read by the live view
        return self.core.infeasible

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id in self._ot_trials:  # Tune asks again for a restored trial
            return dict(TrialRecord.of(self._ot_trials[trial_id]).config)
        ot_trial, config = self.core.ask()
        TrialRecord.set(ot_trial, tune_trial_id=trial_id)  # finds its checkpoints
        self._ot_trials[trial_id] = ot_trial
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return  # multi-objective: Optuna takes no intermediate values

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        if error and trial_id in self.timeouts:  # killed by --trial-timeout: say so
            result = {**(result or {}), "failed": self.timeouts[trial_id]}
        self.core.finish(self._ot_trials[trial_id], result, error=error)
