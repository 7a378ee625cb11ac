"""The search: Optuna samples through Ray Tune, multi-objective, under a hard FLOPs budget.

* :class:`BudgetedOptunaSearch` (a Ray Tune ``OptunaSearch``) asks Optuna for a candidate,
  computes its deploy FLOPs analytically (microseconds) and, when it is over budget, tells
  Optuna at once that it is infeasible (``Trial.set_constraint``) — it never reaches Ray
  and never trains. Feasible candidates become Tune trials.
* :func:`trainable` trains one candidate on the proxy dataset and reports accuracy per
  epoch, with a checkpoint.
* :func:`run_search` starts (or connects to) Ray, runs the Tuner, writes the results.

Objectives: ``accuracy`` (max) and ``flops`` (min); the budget is a constraint, so
``study.best_trials`` holds only feasible, non-dominated trials.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from attnsearch.architecture import Architecture
from attnsearch.errors import InputError

__all__ = ["RunSettings", "run_search", "trainable", "make_sampler", "SAMPLERS"]

log = logging.getLogger(__name__)

SAMPLERS = ("nsga2", "tpe", "random")
CONSTRAINT = "flops_over_budget"  # Optuna constraint key: flops - budget (feasible when <= 0)


@dataclass(frozen=True)
class RunSettings:
    """Everything a run needs, fully resolved; written to run.yaml (enough to resume)."""

    name: str  # results/<name>/
    budget: int  # hard FLOPs limit on the deploy network
    space: str = "resnet50"  # shipped space name or path to a .yaml file
    dataset: str = "digits"  # digits | synthetic | cifar10 | cifar100 | folder:PATH
    data_dir: str = "data"  # where CIFAR archives live (downloaded there when absent)
    trials: int = 24  # trained (feasible) trials to complete
    epochs: int = 2  # proxy epochs per candidate: enough to rank, not to converge
    sampler: str = "nsga2"  # nsga2 | tpe | random
    concurrency: int = 2  # trials running at once
    gpus_per_trial: float = 0.0  # fractional GPUs pack several small proxies on one device
    cpus_per_trial: float = 1.0  # CPU threads per trial
    address: str | None = None  # existing Ray cluster; None starts a local one
    seed: int = 0  # sampler and training seed
    width: float = 0.5  # proxy channel multiplier
    resolution: int | None = None  # proxy image size; None keeps the dataset's own
    batch_size: int = 128  # proxy batch size
    val_fraction: float = 0.2  # share of the training data held out for validation
    limit: int | None = None  # cap on training images (quick runs)
    early_stop: bool = False  # ASHA early stopping on accuracy
    results_dir: str = "results"  # parent folder of the run folder
    study_name: str = ""  # unique per run; set when the run is created
    extra: dict = field(default_factory=dict)  # provenance (versions, git revision)

    @property
    def run_dir(self) -> Path:
        return Path(self.results_dir) / self.name

    def to_dict(self) -> dict:
        return asdict(self)


def make_sampler(name: str, seed: int, trials: int):
    """The Optuna sampler for ``name``; NSGA-II's population is sized to the run."""
    import optuna

    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, trials // 3))
        )
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=max(2, min(10, trials // 3)), multivariate=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise InputError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")


class BudgetedOptunaSearch(OptunaSearch):
    """OptunaSearch that rejects over-budget candidates before they reach Ray.

    Args:
        space: the :class:`attnsearch.spaces.SearchSpace`.
        options: per-unit valid choices at the proxy width.
        budget: FLOPs limit.
        table: the analytic :class:`attnsearch.flops.analytic.CostTable`.
        max_attempts: candidates asked per suggestion before giving up.
    """

    def __init__(self, space, options, budget, table, *, epochs=1, max_attempts=10_000, **kwargs):
        self.space_def = space
        self.epochs = epochs  # a result with fewer epochs was stopped early
        self.interrupted = False  # set on Ctrl-C: stopped trials stay RUNNING, resumable
        self.reruns: list[dict] = []  # trials to run again (resume), oldest first
        self.options = options
        self.budget = budget
        self.table = table
        self.max_attempts = max_attempts
        self.infeasible = 0
        self.invalid = 0
        super().__init__(
            space=self._define_by_run,
            metric=["accuracy", "flops"],
            mode=["max", "min"],
            **kwargs,
        )

    def _define_by_run(self, trial):
        self.space_def.sample(trial, self.options)

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id in self._ot_trials:  # Tune asks again for a restored trial
            ot_trial = self._ot_trials[trial_id]
            return dict(ot_trial.user_attrs["config"])
        if self.reruns:  # a trial that was running when the driver stopped: same params
            rerun = self.reruns.pop(0)
            self._ot_study.enqueue_trial(
                rerun["params"],
                user_attrs={
                    "resumed_from": rerun["from"],
                    "resume_checkpoint": rerun.get("checkpoint") or "",
                },
            )
        for _ in range(self.max_attempts):
            ot_trial = self._ot_study.ask()
            try:
                arch = self.space_def.sample(ot_trial, self.options)
            except ValueError as e:  # jointly impossible at the proxy width
                ot_trial.set_user_attr("invalid", str(e))
                ot_trial.set_constraint(CONSTRAINT, float(self.budget))
                self._tell(ot_trial, [0.0, 0.0])
                self.invalid += 1
                continue
            flops = self.table.total(arch.slots)
            ot_trial.set_user_attr("flops", flops)
            ot_trial.set_user_attr("architecture", arch.to_json())
            ot_trial.set_user_attr("digest", arch.digest())
            ot_trial.set_constraint(CONSTRAINT, float(flops - self.budget))
            if flops > self.budget:
                ot_trial.set_user_attr("trained", False)
                self._tell(ot_trial, [0.0, float(flops)])
                self.infeasible += 1
                continue
            config = {
                "architecture": arch.to_json(),
                "flops": flops,
                "trial_number": ot_trial.number,
                "digest": arch.digest(),
            }
            if ot_trial.user_attrs.get("resume_checkpoint"):
                config["resume_checkpoint"] = ot_trial.user_attrs["resume_checkpoint"]
            ot_trial.set_user_attr("config", config)
            ot_trial.set_user_attr("tune_trial_id", trial_id)  # finds its checkpoints
            self._ot_trials[trial_id] = ot_trial
            return config
        raise RuntimeError(
            f"no candidate under the budget in {self.max_attempts} samples; "
            "raise the budget or narrow the space"
        )

    def _tell(self, ot_trial, values=None, state=None):
        try:
            self._ot_study.tell(ot_trial, values, state=state)
        except Exception as e:  # an already-finished trial must not stop the search
            log.warning("could not record trial %s: %s", ot_trial.number, e)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        return  # multi-objective: Optuna takes no intermediate values

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        self._completed_trials.add(trial_id)
        result = result or {}
        failed = bool(result.get("failed")) or result.get("accuracy") is None
        stopped_early = not failed and int(result.get("epoch", 0)) < self.epochs
        if self.interrupted and (error or failed or stopped_early):
            return  # Ctrl-C before its last epoch: stays RUNNING, a resume re-runs it
        if failed or (error and stopped_early):
            reason = result.get("failed") or "the trial's worker failed"
            ot_trial.set_user_attr("fail_reason", str(reason))
            self._tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            return
        # its last epoch was reported: complete, whatever happened to the worker after
        for key in ("history", "train_seconds", "node_id", "epoch"):
            if key in result:
                ot_trial.set_user_attr(key, result[key])
        ot_trial.set_user_attr("trained", True)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        if stopped_early:  # ASHA stopped it: its accuracy is not comparable
            ot_trial.set_user_attr("early_stopped", True)
            self._tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
            return
        self._tell(ot_trial, [float(result["accuracy"]), float(result["flops"])])


def trainable(config: dict, dataset=None, settings: dict | None = None) -> None:
    """Ray Tune function trainable: train one candidate, report accuracy each epoch."""
    import ray
    import torch
    from ray import tune

    from attnsearch.training import ProxyConfig, train_candidate

    settings = settings or {}
    torch.set_num_threads(max(1, int(settings.get("cpus_per_trial", 1))))
    arch = Architecture.from_json(config["architecture"])
    cfg = ProxyConfig(**settings["proxy"])
    number = int(config["trial_number"])
    node_id = ray.get_runtime_context().get_node_id()
    start_epoch, start_state = 0, None
    ckpt = tune.get_checkpoint()
    if ckpt is None and config.get("resume_checkpoint"):
        ckpt = tune.Checkpoint.from_directory(config["resume_checkpoint"])
    if ckpt is not None:
        with ckpt.as_directory() as d:
            path = Path(d) / "state.pt"
            if path.exists():
                start_state = torch.load(path, map_location="cpu", weights_only=False)
                start_epoch = int(start_state.get("epoch", 0))
    _record_execution(settings, number, node_id, start_epoch, config.get("digest"))
    t0 = time.perf_counter()
    history: list[float] = []

    def report(epoch: int, acc: float, state: dict) -> None:
        history.append(acc)
        metrics = {
            "accuracy": acc,
            "flops": config["flops"],
            "epoch": epoch,
            "history": list(history),
            "trial_number": number,
            "node_id": node_id,
            "train_seconds": time.perf_counter() - t0,
        }
        with tempfile.TemporaryDirectory() as d:
            payload = {"epoch": epoch, "model": state["model"]}
            if epoch < cfg.epochs:  # intermediate: keep what resuming needs
                payload["optimizer"] = state["optimizer"]
            torch.save(payload, Path(d) / "state.pt")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        train_candidate(
            arch,
            dataset,
            cfg,
            trial_seed=number,
            report=report,
            start_epoch=start_epoch,
            start_state=start_state,
        )
    except Exception as e:  # the candidate failed by itself: record why, keep searching
        if _is_worker_death(e):
            raise
        tune.report(
            {
                "accuracy": 0.0,
                "flops": config["flops"],
                "failed": f"{type(e).__name__}: {e}".splitlines()[0][:300],
                "trial_number": number,
                "node_id": node_id,
            }
        )


def _is_worker_death(e: BaseException) -> bool:
    return type(e).__name__ in ("RayActorError", "WorkerCrashedError", "NodeDiedError")


def _record_execution(settings: dict, number: int, node_id: str, start_epoch: int, digest) -> None:
    """Append one line per training execution (tests count them; lost on remote nodes)."""
    path = settings.get("executions_log")
    if not path:
        return
    try:
        with open(path, "a") as f:
            f.write(
                json.dumps(
                    {
                        "trial": number,
                        "node_id": node_id,
                        "pid": os.getpid(),
                        "start_epoch": start_epoch,
                        "digest": digest,
                        "time": time.time(),
                    }
                )
                + "\n"
            )
    except OSError:
        pass


# ---- the driver -----------------------------------------------------------------------
def _start_ray(settings: RunSettings) -> bool:
    """Connect to ``address`` or start a quiet local Ray bound to loopback; True if started."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    address = settings.address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except Exception as e:  # unreachable cluster: bad input, not a crash
            raise InputError(f"cannot connect to the Ray cluster at {address}: {e}") from None
        return False
    ray.init(
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.ERROR,
        log_to_driver=False,
        configure_logging=True,
    )
    return True


_INTERRUPT = threading.Event()  # first Ctrl-C: stop cleanly; second: stop at once


class _InterruptStopper(tune.Stopper):
    """Ends the Tune experiment once Ctrl-C was pressed (module level: pickled by reference)."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return _INTERRUPT.is_set()


def _done_count(study) -> int:
    """Trials whose training finished: complete (trained) or stopped early by ASHA."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("trained")
        and t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )


def reconcile(run_dir: Path, study) -> list[dict]:
    """Make the storage consistent after a driver stopped; return the trials to run again.

    Optuna trials still RUNNING were either training when the driver stopped (an execution
    was recorded): they are marked failed and queued to run again, as new trials with the
    same parameters, from their last checkpoint where one exists; or they were asked but
    never started ("zombies"): they are marked failed. Completed trials are never touched.
    """
    from attnsearch.export import ExportError, find_checkpoint

    executed = set()
    log_path = run_dir / "executions.jsonl"
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            try:
                executed.add(int(json.loads(line)["trial"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by the crash
    reruns = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = t.number in executed and "config" in t.user_attrs
        if started:
            checkpoint = None
            try:
                path = find_checkpoint(run_dir, t.number, t.user_attrs.get("tune_trial_id"))
                checkpoint = str(path.parent if path.is_file() else path)
            except (ExportError, OSError):
                pass
            reruns.append({"params": dict(t.params), "from": t.number, "checkpoint": checkpoint})
            reason = "interrupted: the driver stopped while it trained; run again as a new trial"
        else:
            reason = "asked but never started: the driver stopped first"
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return reruns


def _record_ray_session(run_dir: Path) -> None:
    import ray

    try:
        node = ray._private.worker._global_node
        info = {"session": Path(node.get_session_dir_path()).name, "driver_pid": os.getpid()}
        (run_dir / "ray_session.json").write_text(json.dumps(info))
    except Exception:  # best effort: only used to clean up after a crash
        pass


def kill_stray_ray(run_dir: Path) -> int:
    """Kill the processes of a local Ray that a crashed driver of this run left behind."""
    path = run_dir / "ray_session.json"
    try:
        session = json.loads(path.read_text())["session"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    if not session.startswith("session_"):
        return 0
    killed = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(proc.name)
        if session in cmdline and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


def run_search(settings: RunSettings, *, view=None, space=None, dataset=None) -> dict[str, Any]:
    """Run or continue the search until ``settings.trials`` trials have finished training.

    The Optuna storage is the source of truth: before anything runs, :func:`reconcile`
    settles trials left RUNNING by a stopped driver. Ctrl-C once: running trials stop at
    their next epoch, their state stays resumable, ``summary["interrupted"]`` is True;
    twice: ``KeyboardInterrupt`` at once (still resumable). A local Ray started here is
    shut down on every exit path.
    """
    import ray

    from attnsearch.flops.analytic import cost_table
    from attnsearch.results import storage_for, write_results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = settings.run_dir.resolve()
    table = cost_table(space.backbone, space.input, space.num_classes)
    options = space.options(settings.width)
    storage = storage_for(run_dir)
    searcher = BudgetedOptunaSearch(
        space,
        options,
        settings.budget,
        table,
        epochs=settings.epochs,
        sampler=make_sampler(settings.sampler, settings.seed, settings.trials),
        study_name=settings.study_name,
        storage=storage,
    )
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    searcher.reruns = reconcile(run_dir, study)
    kill_stray_ray(run_dir)
    _INTERRUPT.clear()
    proxy = {
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "width": settings.width,
        "resolution": None,  # resized once at load time
        "flip": settings.dataset.startswith(("cifar", "folder")),
        "seed": settings.seed,
    }
    trial_settings = {
        "proxy": proxy,
        "cpus_per_trial": settings.cpus_per_trial,
        "executions_log": str(run_dir / "executions.jsonl"),
    }
    resources = {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}

    def on_sigint(signum, frame):
        if _INTERRUPT.is_set():
            raise KeyboardInterrupt  # second press: stop at once
        _INTERRUPT.set()
        searcher.interrupted = True
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
        started = _start_ray(settings)
        if started:
            _record_ray_session(run_dir)
        fn = tune.with_resources(
            tune.with_parameters(trainable, dataset=dataset, settings=trial_settings), resources
        )
        callbacks = [view.tune_callback(searcher)] if view is not None else []
        failures_before = _fail_count(study)
        while not _INTERRUPT.is_set():
            done = _done_count(study)
            remaining = settings.trials - done
            if remaining <= 0:
                break
            if _fail_count(study) - failures_before > max(3, settings.trials):
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
                    name="tune",
                    storage_path=str(run_dir),
                    verbose=0,
                    callbacks=callbacks,
                    stop=_InterruptStopper(),
                    failure_config=tune.FailureConfig(max_failures=3),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            tuner.fit()
            no_progress = _done_count(study) == done and not _INTERRUPT.is_set()
            if no_progress and _fail_count(study) - failures_before == 0:
                break  # no progress and no failure: nothing more Tune can do
    finally:
        if started:
            ray.shutdown()
        if in_main and old is not None:
            signal.signal(signal.SIGINT, old[0])
            signal.signal(signal.SIGTERM, old[1])
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    summary = write_results(run_dir, study, settings)
    summary["wall_seconds"] = wall
    summary["infeasible"] = searcher.infeasible
    summary["interrupted"] = _INTERRUPT.is_set()
    summary["done"] = _done_count(study)
    return summary


def _fail_count(study) -> int:
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        if "interrupted" not in t.user_attrs.get("fail_reason", "")
        and "never started" not in t.user_attrs.get("fail_reason", "")
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
