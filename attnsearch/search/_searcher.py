"""The Ray Tune searcher: a thin adapter that lets Tune drive :class:`attnsearch.proposal.Proposer`.

Everything about candidates — asking Optuna, costing, the budget policy, telling — is the
Proposer's; this class only translates: a Tune trial id to an Optuna trial and the config
a worker trains, a finished Tune trial to :meth:`Proposer.finish`. A failure the search
cannot continue after (:class:`~attnsearch.proposal.ProposalError`: no candidate under the
budget; :class:`~attnsearch.proposal.StorageWriteError`: the study cannot be written) is
kept in :attr:`BudgetedOptunaSearch.fatal`, ends the suggestions, and calls ``on_fatal``
(the driver stops Tune with it and raises the error after Tune returns).
"""

from __future__ import annotations

from collections.abc import Callable

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from attnsearch.proposal import ProposalError, Proposer, StorageWriteError, ask, guard_storage
from attnsearch.rundir import TrialRecord

MAX_ASKS = 1000  # asks per suggestion before a `reject` search stops (repair/spread need one)


class BudgetedOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch around a :class:`Proposer`: over-budget candidates never reach
    Ray.

    Args:
        space, options, budget, cost_fn, policy, seed, epochs, checked: the
            :class:`Proposer`'s (``max_attempts`` is :data:`MAX_ASKS`).
        on_fatal: called once when the search cannot go on (see the module docstring).
        **kwargs: OptunaSearch's ``sampler``, ``study_name`` and ``storage``.
    """

    def __init__(
        self,
        space,
        options,
        budget,
        *,
        cost_fn=None,
        policy: str = "spread",
        seed: int = 0,
        epochs: int = 1,
        max_attempts: int = MAX_ASKS,
        checked=None,
        on_fatal: Callable[[], None] | None = None,
        **kwargs,
    ):
        self.space_def = space
        self.options = options
        super().__init__(
            space=self._define_by_run,
            # the names Tune checks in every result; the value told for the cost is the
            # Proposer's (FLOPs or predicted latency), not the worker's
            metric=["accuracy", "flops"],
            mode=["max", "min"],
            **kwargs,
        )
        self.core = Proposer(
            self._ot_study,
            space,
            options,
            budget,
            cost_fn,
            policy,
            seed=seed,
            max_attempts=max_attempts,
            epochs=epochs,
            checked=checked,
        )
        self.fatal: Exception | None = None
        self.on_fatal = on_fatal
        self.timeouts: dict[str, str] = {}  # trial id -> why the time limit killed it

    def _define_by_run(self, trial):
        self.space_def.sample(trial, self.options)

    @property
    def infeasible(self) -> int:  # read by the live view
        return self.core.over_budget

    def _stop(self, error: Exception) -> None:
        if self.fatal is None:
            self.fatal = error
            self.core.interrupted = True  # running trials stay RUNNING: a resume re-runs them
            if self.on_fatal is not None:
                self.on_fatal()

    def suggest(self, trial_id: str) -> dict | None:
        if self.fatal is not None:
            return Searcher.FINISHED
        if trial_id in self._ot_trials:  # Tune asks again for a restored trial
            return dict(TrialRecord.of(self._ot_trials[trial_id]).config)
        try:
            trial, config = ask(self.core)
            with guard_storage(self._ot_study):
                TrialRecord.set(trial, config=config, tune_trial_id=trial_id)
        except (ProposalError, StorageWriteError) as e:
            self._stop(e)
            return Searcher.FINISHED
        self._ot_trials[trial_id] = trial
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return  # multi-objective: Optuna takes no intermediate values

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        self._completed_trials.add(trial_id)
        if error and trial_id in self.timeouts:  # killed by --trial-timeout: say so
            result = {**(result or {}), "failed": self.timeouts[trial_id]}
        try:
            self.core.finish(self._ot_trials[trial_id], result, error=error)
        except StorageWriteError as e:
            self._stop(e)
