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
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
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

    def __init__(self, space, options, budget, table, *, max_attempts=10_000, **kwargs):
        self.space_def = space
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
            ot_trial.set_user_attr("config", config)
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
        if error or not result or result.get("failed") or result.get("accuracy") is None:
            reason = (result or {}).get("failed") or "the trial's worker failed"
            ot_trial.set_user_attr("fail_reason", str(reason))
            self._tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            return
        for key in ("history", "train_seconds", "node_id", "epoch"):
            if key in result:
                ot_trial.set_user_attr(key, result[key])
        ot_trial.set_user_attr("trained", True)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        self._tell(ot_trial, [float(result["accuracy"]), float(result["flops"])])


def _searcher_class():
    return BudgetedOptunaSearch


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
    if ckpt is not None:
        with ckpt.as_directory() as d:
            path = Path(d) / "state.pt"
            if path.exists():
                start_state = torch.load(path, map_location="cpu", weights_only=False)
                start_epoch = int(start_state.get("epoch", 0))
                if "optimizer" not in start_state:  # final checkpoint: nothing left to train
                    start_epoch, start_state = 0, None
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


def run_search(settings: RunSettings, *, view=None, space=None, dataset=None) -> dict[str, Any]:
    """Run (or continue) the search described by ``settings``; returns a summary."""
    import optuna
    import ray
    from ray import tune

    from attnsearch.flops.analytic import cost_table
    from attnsearch.results import storage_for, write_results

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = settings.run_dir.resolve()
    table = cost_table(space.backbone, space.input, space.num_classes)
    options = space.options(settings.width)
    storage = storage_for(run_dir)
    searcher_cls = _searcher_class()
    searcher = searcher_cls(
        space,
        options,
        settings.budget,
        table,
        sampler=make_sampler(settings.sampler, settings.seed, settings.trials),
        study_name=settings.study_name,
        storage=storage,
    )
    started = _start_ray(settings)
    try:
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
        fn = tune.with_resources(
            tune.with_parameters(trainable, dataset=dataset, settings=trial_settings), resources
        )
        scheduler = None
        if settings.early_stop:
            from ray.tune.schedulers import ASHAScheduler

            scheduler = ASHAScheduler(
                metric="accuracy",
                mode="max",
                time_attr="epoch",
                max_t=settings.epochs,
                grace_period=1,
                reduction_factor=2,
            )
        callbacks = [view.tune_callback(searcher)] if view is not None else []
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=settings.trials,
                max_concurrent_trials=settings.concurrency,
                reuse_actors=True,
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(run_dir),
                verbose=0,
                callbacks=callbacks,
                failure_config=tune.FailureConfig(max_failures=3),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            ),
        )
        t0 = time.perf_counter()
        tuner.fit()
        wall = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    summary = write_results(run_dir, study, settings)
    summary["wall_seconds"] = wall
    summary["infeasible"] = searcher.infeasible
    return summary
