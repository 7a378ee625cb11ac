"""The driver: run Tune until the study holds the requested number of trained trials."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import optuna
from ray import tune

from attnsearch.rundir import RunDir, TrialRecord
from attnsearch.search._settings import RunSettings

_INTERRUPT = threading.Event()  # first Ctrl-C: stop cleanly; second: stop at once


class _InterruptStopper(tune.Stopper):
    """Ends the Tune experiment once Ctrl-C was pressed (module level: pickled by reference)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return _INTERRUPT.is_set()


def _stop_tune() -> None:
    """The searcher cannot go on: end the Tune experiment (module level: pickled by name)."""
    _INTERRUPT.set()


def done_count(study) -> int:
    """Trials whose training finished: complete (trained) or stopped early by ASHA (trials
    copied by a warm start are another run's and do not count)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("trained")
        and "warm_start_from" not in t.user_attrs
        and t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )


def fail_count(study) -> int:
    """Trials that failed by themselves (interruptions by the driver do not count)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        if TrialRecord.of(t).counts_as_failure
    )


def _scheduler(settings: RunSettings):
    if not settings.early_stop:
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        metric="accuracy",
        mode="max",
        time_attr="epoch",
        max_t=settings.epochs,
        grace_period=1,
        reduction_factor=2,
    )


def cost_of(settings: RunSettings, run_dir):
    """The Proposer's budget and cost function: analytic FLOPs (``None``: its default), or
    the latency table's prediction in nanoseconds (an integer, additive over slots). A
    relative table path is inside the run folder (a table built for the run)."""
    if settings.latency_budget_ms is None:
        return settings.budget, None
    from pathlib import Path

    from attnsearch.latency import LatencyCost, LatencyTable

    # checked against the device and the space by `run` before the run folder was made
    table = LatencyTable.load(Path(run_dir) / settings.latency_table)
    return int(round(settings.latency_budget_ms * 1e6)), LatencyCost(table)


def seed_from(source_dir: str, study, proposer) -> int:
    """Copy the finished trials of the run in ``source_dir`` into ``study`` (a warm start,
    :func:`attnsearch.proposal.warm_start`); they are history for the sampler only."""
    from pathlib import Path

    from attnsearch.proposal import warm_start
    from attnsearch.results import open_study

    path = Path(source_dir)
    source = open_study(path, RunDir.open(path.parent, path.name).record.study_name)
    return warm_start(study, source, proposer=proposer)


def run_search(run: RunDir, *, view=None, space=None, dataset=None) -> dict[str, Any]:
    """Run or continue the search in ``run`` until its settings' ``trials`` have trained.

    The Optuna storage is the source of truth: before anything runs,
    :func:`attnsearch.search.reconcile` settles trials left RUNNING by a stopped driver.
    Ctrl-C once: running trials stop at their next epoch, their state stays resumable,
    ``summary["interrupted"]`` is True; twice: ``KeyboardInterrupt`` at once (still
    resumable). A local Ray started here is shut down on every exit path.
    """
    import ray

    from attnsearch.proposal import make_sampler
    from attnsearch.results import storage_for, write_results
    from attnsearch.search._ray import kill_stray_ray, record_ray_session, start_ray
    from attnsearch.search._resume import reconcile
    from attnsearch.search._searcher import BudgetedOptunaSearch
    from attnsearch.search._worker import trainable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run.path = run.path.resolve()  # workers write the execution log from other folders
    settings, study_name = run.settings, run.record.study_name
    options = space.options(settings.width)
    storage = storage_for(run.path)
    # a resume continues the sampler's stream instead of replaying it from the start (which
    # would propose the architectures already trained again); a new run uses the seed as is
    told = 0
    if study_name in optuna.get_all_study_names(storage):
        told = len(optuna.load_study(study_name=study_name, storage=storage).trials)
    budget, cost_fn = cost_of(settings, run.path)
    searcher = BudgetedOptunaSearch(
        space,
        options,
        budget,
        cost_fn=cost_fn,
        policy=settings.policy,
        seed=settings.seed,
        latency=settings.latency_budget_ms is not None,
        epochs=settings.epochs,
        on_fatal=_stop_tune,
        sampler=make_sampler(
            settings.sampler, settings.seed + told, settings.trials, settings.concurrency
        ),
        study_name=study_name,
        storage=storage,
    )
    study = optuna.load_study(study_name=study_name, storage=storage)
    if settings.warm_start and told == 0:  # a new run: seed it once, before the first ask
        seed_from(settings.warm_start, study, searcher.core)
    searcher.core.reruns = reconcile(run, study)
    kill_stray_ray(run)
    _INTERRUPT.clear()
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}

    def on_sigint(signum, frame):
        if _INTERRUPT.is_set():
            raise KeyboardInterrupt  # second press: stop at once
        _INTERRUPT.set()
        searcher.core.interrupted = True
        if view is not None:
            view.note(
                "stopping: running trials end at their next epoch and stay resumable "
                "(Ctrl-C again to stop at once)"
            )

    def on_sigterm(signum, frame):
        raise SystemExit(143)  # run the finally blocks: Ray is shut down

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    in_main = threading.current_thread() is threading.main_thread()
    old = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) if in_main else None
    if in_main:
        signal.signal(signal.SIGINT, on_sigint)
        signal.signal(signal.SIGTERM, on_sigterm)
    started = False
    t0 = time.perf_counter()
    try:
        started = start_ray(settings.address)
        if started:
            record_ray_session(run)
        fn = tune.with_resources(
            tune.with_parameters(
                trainable,
                dataset=dataset,
                settings=settings,
                executions_log=str(run.executions_log),
            ),
            resources,
        )
        callbacks = [view.tune_callback(searcher)] if view is not None else []
        failures_before = fail_count(study)
        while not _INTERRUPT.is_set():
            done = done_count(study)
            remaining = settings.trials - done
            if remaining <= 0:
                break
            if fail_count(study) - failures_before > max(3, settings.trials):
                break  # candidates keep failing by themselves: stop, exit 1 if none done
            tuner = tune.Tuner(
                fn,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=remaining,
                    max_concurrent_trials=settings.concurrency,
                    reuse_actors=True,
                    scheduler=_scheduler(settings),
                ),
                run_config=tune.RunConfig(
                    name=run.tune_dir.name,
                    storage_path=str(run.path),
                    verbose=0,
                    callbacks=callbacks,
                    stop=_InterruptStopper(),
                    failure_config=tune.FailureConfig(max_failures=3),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            tuner.fit()
            no_progress = done_count(study) == done and not _INTERRUPT.is_set()
            if no_progress and fail_count(study) - failures_before == 0:
                break  # no progress and no failure: nothing more Tune can do
        if searcher.fatal is not None:  # no candidate under the budget, or storage failed
            raise searcher.fatal
    finally:
        if started:
            ray.shutdown()
        if in_main and old is not None:
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=study_name, storage=storage)
    summary = write_results(run, study)
    summary["wall_seconds"] = wall
    summary["infeasible"] = searcher.core.over_budget
    summary["repaired"] = searcher.core.repaired
    summary["interrupted"] = _INTERRUPT.is_set()
    summary["done"] = done_count(study)
    return summary
