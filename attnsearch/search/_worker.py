"""The trial worker: train one candidate and report each epoch.

:func:`run_trial` is the whole training of a trial, without Ray (an ``evaluate`` command or
a test calls it directly); :func:`trainable` is the Ray Tune function trainable around it
(checkpoints through Tune, the execution log, ``tune.report``).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnsearch.architecture import Architecture
from attnsearch.rundir import CHECKPOINT_FILE, ResultsError, load_checkpoint, save_checkpoint
from attnsearch.settings import ProxyConfig


@dataclass
class TrialOutcome:
    """How a trial's training ended."""

    accuracy: float | None  # final validation accuracy; None when it failed
    history: list[float] = field(default_factory=list)  # accuracy after each epoch run here
    epoch: int = 0  # last epoch reached
    train_seconds: float = 0.0
    failed: str | None = None  # the candidate's own failure, one line
    train_losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    val_losses: list[float] = field(default_factory=list)  # validation cross-entropy per epoch
    resume_error: str | None = None  # the checkpoint could not be read: trained from scratch
    timings: dict[str, float] = field(default_factory=dict)  # seconds per part (training.py)


# report(metrics, state): metrics = {"accuracy", "epoch", "history", "train_seconds"},
# state = the checkpoint payload for save_checkpoint ({"epoch", "model", ["optimizer"]})
Report = Callable[[dict[str, Any], dict[str, Any]], None]


def run_trial(
    arch: Architecture,
    proxy: ProxyConfig,
    dataset,
    seed: int,
    report: Report | None = None,
    *,
    checkpoint: str | Path | dict | None = None,
    on_start: Callable[[int], None] | None = None,
    threads: int | None = None,
    device=None,
) -> TrialOutcome:
    """Train ``arch`` on ``dataset`` as a search trial does; report after each epoch.

    Args:
        arch: the candidate.
        proxy: how to train it (the dataset is already at its resolution).
        dataset: a :class:`attnsearch.datasets.Dataset`.
        seed: the trial seed (the trial number), added to ``proxy.seed``.
        report: called after each epoch (see :data:`Report`).
        checkpoint: a checkpoint to continue from: ``state.pt``, its folder, or what
            :func:`attnsearch.rundir.load_checkpoint` read from it.
        on_start: called with the epoch training starts from, before it starts. When
            ``checkpoint`` cannot be read (truncated, corrupted), training starts from
            scratch instead of failing, and the outcome's ``resume_error`` says why.
        threads: torch CPU threads.
        device: where to train (default: CUDA if visible, as a trial).

    Returns:
        The outcome; a candidate that fails by itself (non-finite loss, ...) is an outcome
        with ``failed`` set. A dead worker raises.
    """
    import torch

    from attnsearch.training import train_candidate

    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    cfg = dataclasses.replace(proxy, resolution=None)  # resized once, at load time
    start_state, resume_error = read_start_state(checkpoint)
    start_epoch = int(start_state.get("epoch", 0)) if start_state is not None else 0
    if on_start is not None:
        on_start(start_epoch)
    t0 = time.perf_counter()
    history: list[float] = []
    timings: dict[str, float] = {}  # the trainer's timers, filled as it goes

    def each_epoch(epoch: int, acc: float, state: dict) -> None:
        history.append(acc)
        if report is None:
            return
        metrics = {
            "accuracy": acc,
            "epoch": epoch,
            "history": list(history),
            "train_seconds": time.perf_counter() - t0,
            "timings": dict(timings),  # so far; this report's own time is not in it
        }
        payload = {"epoch": epoch, "model": state["model"]}
        if epoch < cfg.epochs:  # intermediate: keep what resuming needs
            payload["optimizer"] = state["optimizer"]
        report(metrics, payload)

    try:
        result = train_candidate(
            arch,
            dataset,
            cfg,
            trial_seed=seed,
            report=each_epoch,
            start_epoch=start_epoch,
            start_state=start_state,
            device=device,
            timings=timings,
            keep_state=False,  # the final weights are in the last checkpoint
        )
    except Exception as e:  # the candidate failed by itself: record why, keep searching
        if _is_worker_death(e):
            raise
        return TrialOutcome(
            accuracy=None,
            history=history,
            epoch=start_epoch + len(history),
            train_seconds=time.perf_counter() - t0,
            failed=f"{type(e).__name__}: {e}".splitlines()[0][:300],
            resume_error=resume_error,
            timings=dict(timings),
        )
    return TrialOutcome(
        result.accuracy,
        history,
        cfg.epochs,
        time.perf_counter() - t0,
        resume_error=resume_error,
        train_losses=list(result.train_losses),
        val_losses=list(result.val_losses),
        timings=dict(timings),
    )


def read_start_state(checkpoint: str | Path | dict | None) -> tuple[dict | None, str | None]:
    """``(state, None)`` for a readable checkpoint (or a state already read), ``(None, why)``
    for a truncated or corrupted one: the trial then trains from scratch, once, instead of
    failing on every retry; ``(None, None)`` without one."""
    if checkpoint is None or isinstance(checkpoint, dict):
        return checkpoint, None
    try:
        return load_checkpoint(checkpoint), None
    except ResultsError as e:
        return None, str(e)


def _is_worker_death(e: BaseException) -> bool:
    return type(e).__name__ in ("RayActorError", "WorkerCrashedError", "NodeDiedError")


_DATASET: dict[str, Any] = {}  # this worker process's copy of the run's dataset, by ref


def resident_dataset(dataset):
    """The trial's dataset: a ``(ObjectRef,)`` handle from the driver is fetched once per
    worker process and kept for its next trials (a reused actor: no fetch, and the same
    object, so the trainer keeps its device copy too); a Dataset is itself."""
    if not isinstance(dataset, tuple):
        return dataset
    import ray

    (ref,) = dataset
    key = ref.hex()
    if key not in _DATASET:
        _DATASET.clear()  # one run's dataset at a time
        _DATASET[key] = ray.get(ref)
    return _DATASET[key]


def trainable(config: dict, dataset=None, settings=None, executions=None) -> None:
    """Ray Tune function trainable: :func:`run_trial` with Tune checkpoints and reports.

    ``dataset`` is a Dataset or the driver's ``(ObjectRef,)`` of one
    (:func:`resident_dataset`); ``settings`` is the :class:`attnsearch.search.RunSettings`;
    ``executions`` the driver's execution-log actor
    (:func:`attnsearch.search._ray.execution_log`): a worker never writes the run folder
    itself, which may be on another machine.
    """
    import ray
    from ray import tune

    from attnsearch.search._gpus import trial_device
    from attnsearch.search._ray import report_execution

    entered = time.time()  # the trial's wall clock starts here in the worker
    arch = Architecture.from_json(config["architecture"])
    number = int(config["trial_number"])
    node_id = ray.get_runtime_context().get_node_id()
    ckpt = tune.get_checkpoint()
    if ckpt is None and config.get("resume_checkpoint"):
        ckpt = tune.Checkpoint.from_directory(config["resume_checkpoint"])
    checkpoint, resume_error = None, None
    if ckpt is not None:
        with ckpt.as_directory() as d:  # a missing file reads as a corrupted checkpoint
            checkpoint, resume_error = read_start_state(Path(d) / CHECKPOINT_FILE)

    def on_start(start_epoch: int) -> None:
        report_execution(
            executions, number, node_id, start_epoch, config.get("digest"), resume_error
        )

    last_saved = [time.perf_counter()]  # the trial's start counts as its last checkpoint

    def report(metrics: dict, payload: dict) -> None:
        metrics = {**metrics, "flops": config["flops"], "trial_number": number, "node_id": node_id}
        if config.get("role"):  # the live view counts references and repeats apart
            metrics["role"] = config["role"]
        if resume_error:  # recorded with the trial: it trained from scratch
            metrics["resume_error"] = resume_error
        final = payload["epoch"] >= settings.epochs  # its weights are kept: always saved
        if not final and time.perf_counter() - last_saved[0] < settings.checkpoint_interval:
            metrics["timings"] = {**metrics["timings"], "entered": entered, "sent": time.time()}
            tune.report(metrics)  # too soon after the last checkpoint: none this epoch
            return
        last_saved[0] = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            save_checkpoint(out, payload["epoch"], payload["model"], payload.get("optimizer"))
            # the worker's side of the trial's wall time, recorded on the trial
            # (benchmarks/trial_overhead.py): this save, and when the report left
            saved = time.perf_counter() - t
            metrics["timings"] = {
                **metrics["timings"], "save_now": saved, "entered": entered, "sent": time.time()
            }  # fmt: skip
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(out))

    def failed(reason: str) -> None:
        tune.report(
            {
                "accuracy": 0.0,
                "flops": config["flops"],
                "failed": reason,
                "trial_number": number,
                "node_id": node_id,
                **({"resume_error": resume_error} if resume_error else {}),
            }
        )

    # a trial that reserved a GPU trains on it, or fails saying why; never on the CPU
    reserved = float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    try:
        device = trial_device(reserved)
    except RuntimeError as e:
        failed(str(e))
        return
    outcome = run_trial(
        arch,
        settings.proxy,
        resident_dataset(dataset),
        number,
        report,
        checkpoint=checkpoint,
        on_start=on_start,
        threads=settings.cpus_per_trial,
        device=device,
    )
    if outcome.failed is not None:
        failed(outcome.failed)
