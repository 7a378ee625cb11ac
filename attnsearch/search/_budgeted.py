"""Ask → check budget → tell, over one Optuna study; no Ray (a benchmark drives it directly).

:class:`BudgetedSearch` asks Optuna for candidates, computes each one's deploy FLOPs
analytically (microseconds) and tells Optuna at once when it is over budget
(``Trial.set_constraint``) — such a candidate never trains.
:class:`attnsearch.search._searcher.BudgetedOptunaSearch` wraps it for Ray Tune.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import optuna

from attnsearch.rundir import FailKind, TrialRecord

log = logging.getLogger(__name__)

CONSTRAINT = "flops_over_budget"  # Optuna constraint key: flops - budget (feasible when <= 0)


class BudgetedSearch:
    """Ask → check budget → tell, over one Optuna study (no Ray).

    Args:
        study: the Optuna study (multi-objective: accuracy max, FLOPs min).
        space: the :class:`attnsearch.spaces.SearchSpace`.
        options: per-unit valid choices at the proxy width.
        budget: FLOPs limit.
        table: the analytic :class:`attnsearch.flops.analytic.CostTable`.
        epochs: a result with fewer epochs was stopped early.
        max_attempts: candidates asked per suggestion before giving up.
    """

    def __init__(self, study, space, options, budget, table, *, epochs=1, max_attempts=10_000):
        self.study = study
        self.space = space
        self.options = options
        self.budget = budget
        self.table = table
        self.epochs = epochs
        self.max_attempts = max_attempts
        self.interrupted = False  # set on Ctrl-C: stopped trials stay RUNNING, resumable
        # the interrupted trials to run again, oldest first (attnsearch.search._resume.Rerun),
        # read from the storage at each ask (the driver sets it; never kept only in memory)
        self.pending_reruns: Callable[[], list[Any]] = list
        self.infeasible = 0
        self.invalid = 0

    def ask(self) -> tuple[optuna.trial.Trial, dict]:
        """The next feasible candidate: its Optuna trial and the config to train it."""
        reruns = self.pending_reruns()
        if reruns:  # a trial that was running when the driver stopped: same params
            rerun = reruns[0]
            self.study.enqueue_trial(
                rerun.params,
                user_attrs={
                    "resumed_from": rerun.trial,
                    "resume_checkpoint": rerun.checkpoint or "",
                },
            )
        for _ in range(self.max_attempts):
            ot_trial = self.study.ask()
            try:
                arch = self.space.sample(ot_trial, self.options)
            except ValueError as e:  # jointly impossible at the proxy width
                TrialRecord.set(ot_trial, invalid=str(e))
                ot_trial.set_constraint(CONSTRAINT, float(self.budget))
                self.tell(ot_trial, [0.0, 0.0])
                self.invalid += 1
                continue
            flops = self.table.total(arch.slots)
            TrialRecord.set(
                ot_trial, flops=flops, architecture=arch.to_json(), digest=arch.digest()
            )
            ot_trial.set_constraint(CONSTRAINT, float(flops - self.budget))
            # a reference enqueued by the driver trains even over budget (--references all:
            # context, never on the front); its constraint still tells the sampler
            if flops > self.budget and not TrialRecord.of(ot_trial).role:
                TrialRecord.set(ot_trial, trained=False)
                self.tell(ot_trial, [0.0, float(flops)])
                self.infeasible += 1
                continue
            config = {
                "architecture": arch.to_json(),
                "flops": flops,
                "trial_number": ot_trial.number,
                "digest": arch.digest(),
            }
            resume = TrialRecord.of(ot_trial).resume_checkpoint
            if resume:
                config["resume_checkpoint"] = resume
            TrialRecord.set(ot_trial, config=config)
            return ot_trial, config
        raise RuntimeError(
            f"no candidate under the budget in {self.max_attempts} samples; "
            "raise the budget or narrow the space"
        )

    def tell(self, ot_trial, values=None, state=None) -> None:
        try:
            self.study.tell(ot_trial, values, state=state)
        except Exception as e:  # an already-finished trial must not stop the search
            log.warning("could not record trial %s: %s", ot_trial.number, e)

    def finish(self, ot_trial, result: dict | None, *, error: bool = False) -> None:
        """Record a trained trial's outcome (its last result, or a failure)."""
        result = result or {}
        failed = bool(result.get("failed")) or result.get("accuracy") is None
        stopped_early = not failed and int(result.get("epoch", 0)) < self.epochs
        if self.interrupted and (error or failed or stopped_early):
            return  # Ctrl-C before its last epoch: stays RUNNING, a resume re-runs it
        if failed or (error and stopped_early):
            kind = FailKind.CANDIDATE if result.get("failed") else FailKind.WORKER
            reason = result.get("failed") or "the trial's worker failed"
            TrialRecord.set(ot_trial, fail_kind=kind, fail_reason=str(reason))
            self.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            return
        # its last epoch was reported: complete, whatever happened to the worker after
        TrialRecord.set(
            ot_trial,
            **{
                k: result[k]
                for k in ("history", "train_seconds", "node_id", "epoch", "resume_error")
                if k in result
            },
        )
        TrialRecord.set(ot_trial, trained=True)
        if stopped_early:  # ASHA stopped it: its accuracy is not comparable
            TrialRecord.set(ot_trial, early_stopped=True)
            self.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            return
        self.tell(ot_trial, [float(result["accuracy"]), float(result["flops"])])
