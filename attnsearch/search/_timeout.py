"""The per-trial time limit (``--trial-timeout``): a Tune callback on the driver.

A stuck trial reports nothing, so a Tune stopper (called on results) never sees it; this
callback checks the running trials' clocks on every step of Tune's loop and kills the
actor of one over the limit, with no retry, after noting why for the searcher (which
records the trial as failed with that reason).
"""

from __future__ import annotations

import time

from ray import tune

AUTO_FACTOR = 10.0  # automatic limit: this many times the longest trial finished so far
AUTO_FLOOR = 300.0  # ... and never under this many seconds


def limit_text(limit: float | None) -> str:
    if limit is None:
        return f"automatic ({AUTO_FACTOR:g}x the longest finished trial, at least {AUTO_FLOOR:g}s)"
    return "off" if limit == 0 else f"{limit:g}s"


class TrialTimeout(tune.Callback):
    """Kill trials running longer than ``limit`` seconds (0: never; None: automatic).

    ``reasons`` (trial id -> reason) is shared with the searcher, which records a killed
    trial as failed with its reason.
    """

    def __init__(self, limit: float | None, reasons: dict[str, str]):
        self.limit = limit
        self.reasons = reasons
        self.started: dict[str, float] = {}
        self.longest = 0.0

    def current_limit(self) -> float | None:
        if self.limit is None:
            return max(AUTO_FLOOR, AUTO_FACTOR * self.longest) if self.longest > 0 else None
        return self.limit or None

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.monotonic()

    on_trial_restore = on_trial_start
    on_trial_recover = on_trial_start

    def on_trial_complete(self, iteration, trials, trial, **info):
        start = self.started.pop(trial.trial_id, None)
        if start is not None:
            self.longest = max(self.longest, time.monotonic() - start)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.started.pop(trial.trial_id, None)

    def on_step_begin(self, iteration, trials, **info):
        limit = self.current_limit()
        if limit is None:
            return
        now = time.monotonic()
        for trial in trials:
            start = self.started.get(trial.trial_id)
            if trial.status != "RUNNING" or start is None or now - start <= limit:
                continue
            actor = trial.temporary_state.ray_actor
            if actor is None:
                continue
            import ray

            self.reasons[trial.trial_id] = (
                f"timed out: still running after {limit:.0f}s (--trial-timeout)"
            )
            self.started.pop(trial.trial_id, None)
            trial.max_failures = 0  # no retry: Tune reports it to the searcher as an error
            ray.kill(actor, no_restart=True)
