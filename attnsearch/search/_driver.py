"""The driver: run Tune until the study holds the requested number of trained trials."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from typing import Any

import optuna
from ray import tune

from attnsearch.rundir import RunDir
from attnsearch.search._extras import done_count, enqueue_extras, fail_count
from attnsearch.search._setup import _scheduler, left_out_text, run_cost, seed_from

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


def run_search(run: RunDir, *, view=None, space=None, dataset=None, checked=None) -> dict[str, Any]:
    """Run or continue the search in ``run`` until its settings' ``trials`` have trained,
    with the references before them and the repeats after them (:func:`enqueue_extras`).

    The Optuna storage is the source of truth: before anything runs,
    :func:`attnsearch.search.reconcile` settles trials left RUNNING by a stopped driver.
    Ctrl-C once: running trials stop at their next epoch, their state stays resumable,
    ``summary["interrupted"]`` is True; twice: ``KeyboardInterrupt`` at once (still
    resumable). A local Ray started here is shut down on every exit path.

    ``checked`` is the run's feasibility check (:meth:`attnsearch.cost.Cost.check_budget`
    of its cost and budget), made by ``run`` (before the folder existed, or once a latency
    table measured into it exists); ``None`` (a resume, or a caller of its own): made here,
    before the storage is touched.
    """
    import ray

    from attnsearch.proposal import make_sampler
    from attnsearch.references import references_for, references_left_out
    from attnsearch.results import storage_for, write_results
    from attnsearch.search._gpus import check_driver_torch, resolve_gpus
    from attnsearch.search._ray import check_resources, execution_log, start_ray
    from attnsearch.search._resume import pending_reruns, reconcile
    from attnsearch.search._searcher import BudgetedOptunaSearch
    from attnsearch.search._session import kill_stray_ray, record_ray_session
    from attnsearch.search._timeout import TrialTimeout
    from attnsearch.search._worker import trainable

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run.path = run.path.resolve()  # workers write the execution log from other folders
    settings, study_name = run.settings, run.record.study_name
    options = space.options(settings.width)
    if checked is None:
        cost, budget = run_cost(settings, run.path, space)
        checked = cost.check_budget(budget, space, options)
    budget, cost_fn = checked.budget, checked.cost
    storage = storage_for(run.path)
    # a resume continues the sampler's stream instead of replaying it from the start (which
    # would propose the architectures already trained again); a new run uses the seed as is
    told = 0
    if study_name in optuna.get_all_study_names(storage):
        told = len(optuna.load_study(study_name=study_name, storage=storage).trials)
    searcher = BudgetedOptunaSearch(
        space,
        options,
        budget,
        cost_fn=cost_fn,
        policy=settings.policy,
        seed=settings.seed,
        epochs=settings.epochs,
        checked=checked,
        on_fatal=_stop_tune,
        sampler=make_sampler(
            settings.sampler, settings.seed + told, settings.trials, settings.concurrency
        ),
        study_name=study_name,
        storage=storage,
    )
    study = optuna.load_study(study_name=study_name, storage=storage)
    reconcile(run, study)  # marks the interrupted trials; their re-runs come from the storage
    searcher.core.pending_reruns = functools.partial(pending_reruns, run, searcher.core.study)
    references = references_for(
        space, width=settings.width, budget=budget, mode=settings.references, cost_fn=cost_fn
    )
    if view is not None:  # (references "none" leaves nothing out)
        left = references_left_out(
            space, width=settings.width, budget=budget, mode=settings.references, cost_fn=cost_fn
        )
        text = left_out_text(left, settings.width, cost_fn)
        if text:
            view.note(text)
    kill_stray_ray(run, note=view.note if view is not None else None)
    _INTERRUPT.clear()

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
        # ---- Ray: our own or --address; trials it can run; the driver-side logs ----
        started = start_ray(settings.address)
        if started:
            record_ray_session(run)
        # auto becomes a share of the cluster's GPUs; refused here, before any trial, when
        # a GPU trial could not train on one (this driver's torch is built without CUDA)
        gpus, line = resolve_gpus(settings.gpus_per_trial, settings.concurrency)
        if line and view is not None:
            view.note(line)
        settings = settings.replace(gpus_per_trial=gpus)  # what each trial reserves
        check_resources(settings.cpus_per_trial, gpus)  # before any trial
        check_driver_torch(gpus)
        # a new run is seeded once, before the first ask, and only once the checks above
        # passed: a run refused there holds no trial, so its folder and name are discarded
        if settings.warm_start and told == 0:
            seed_from(settings.warm_start, study, searcher.core)
        resources = {"cpu": settings.cpus_per_trial, "gpu": gpus}
        fn = tune.with_resources(
            tune.with_parameters(
                trainable,
                dataset=(ray.put(dataset),),  # fetched once per worker process, and kept
                settings=settings,
                executions=execution_log(run.executions_log),
            ),
            resources,
        )
        callbacks = [TrialTimeout(settings.trial_timeout, searcher.timeouts)]
        if view is not None:
            callbacks.append(view.tune_callback(searcher))
        # ---- end of the Ray set-up ----
        failures_before = fail_count(study)
        while not _INTERRUPT.is_set():
            # stages: references (first, they warm-start the sampler), the search's own
            # trials, then repeats of the front and of the trials within noise of it
            done = done_count(study)
            progress = done_count(study, extras=True)
            remaining = max(0, settings.trials - done)
            enqueue_extras(study, settings, space, references, search_done=remaining == 0)
            waiting = len(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
            )
            if remaining + waiting <= 0:
                break
            if fail_count(study) - failures_before > max(3, settings.trials):
                break  # candidates keep failing by themselves: stop, exit 1 if none done
            tuner = tune.Tuner(
                fn,
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=remaining + waiting,
                    max_concurrent_trials=settings.concurrency,
                    reuse_actors=True,
                    scheduler=_scheduler(settings),
                ),
                run_config=tune.RunConfig(
                    name=run.tune_dir.name,
                    storage_path=run.tune_storage,  # the run folder, or --storage/NAME
                    verbose=0,
                    callbacks=callbacks,
                    stop=_InterruptStopper(),
                    failure_config=tune.FailureConfig(max_failures=3),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            tuner.fit()
            no_progress = done_count(study, extras=True) == progress and not _INTERRUPT.is_set()
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
    summary["gpus_per_trial"] = settings.gpus_per_trial  # as resolved (None: never connected)
    return summary
