"""Train one architecture for several seeds exactly as a search trial trains it.

A search trial (``attnsearch.search.trainable``) sets torch's thread count to the run's
``cpus_per_trial``, builds a :class:`~attnsearch.training.ProxyConfig` from the run's
settings and calls :func:`~attnsearch.training.train_candidate` with
``trial_seed = trial number``. :func:`evaluate_architecture` does the same for each seed,
so evaluating with a trial's number as the seed reproduces that trial's accuracy.
:class:`ProxySettings` holds the proxy-relevant part of a run's settings: read from a
run's ``run.yaml`` (:meth:`ProxySettings.from_run`) or ``run``'s defaults
(:meth:`ProxySettings.defaults`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from attnsearch import stats
from attnsearch.errors import InputError

__all__ = ["EvalResult", "ProxySettings", "evaluate_architecture", "run_defaults"]

SMALL_DATASET = 10_000  # run's rule: batch 32 below this many training images, else 128
SMALL_BATCH, LARGE_BATCH = 32, 128  # the two batch sizes of that rule (cli/_run_impl.py)


def run_defaults() -> dict[str, Any]:
    """``run``'s default settings, read from the settings dataclasses (no numbers repeated)."""
    from attnsearch.proxy import ProxyConfig
    from attnsearch.search import RunSettings

    out = {
        f.name: f.default
        for f in dataclasses.fields(ProxyConfig)
        if f.default is not dataclasses.MISSING
    }
    out.update(
        {
            f.name: f.default
            for f in dataclasses.fields(RunSettings)
            if f.default is not dataclasses.MISSING
        }
    )
    return out


@dataclass(frozen=True)
class ProxySettings:
    """The settings that decide how a candidate trains (a subset of a run's settings).

    Attributes:
        dataset: dataset spec (``digits``, ``clutter``, ``cifar10``, ...).
        data_dir: where downloaded datasets live.
        epochs: proxy epochs.
        width: proxy channel multiplier.
        resolution: proxy image size (``None``: the dataset's own).
        batch_size: proxy batch size; ``None`` applies ``run``'s rule (32 under 10,000
            training images, else 128).
        limit: cap on training images.
        seed: the run's seed (splits the data; added to each trial seed).
        threads: torch threads per trial (the run's ``cpus_per_trial``).
    """

    dataset: str
    data_dir: str
    epochs: int
    width: float
    resolution: int | None
    batch_size: int | None
    limit: int | None
    seed: int
    threads: int

    @classmethod
    def defaults(cls, **overrides: Any) -> ProxySettings:
        """``run``'s defaults, with ``overrides`` (``None`` values are ignored)."""
        d = run_defaults()
        values = {
            "dataset": d["dataset"],
            "data_dir": d["data_dir"],
            "epochs": d["epochs"],
            "width": d["width"],
            "resolution": d["resolution"],
            "batch_size": None,  # run resolves it from the training-set size
            "limit": d["limit"],
            "seed": d["seed"],
            "threads": max(1, int(d["cpus_per_trial"])),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_run(cls, results_dir: str, name: str) -> ProxySettings:
        """The proxy settings recorded in ``results_dir/name/run.yaml``."""
        from attnsearch.rundir import RunDir

        settings = RunDir.open(results_dir, name).settings
        proxy = settings.proxy
        return cls(
            dataset=settings.dataset,
            data_dir=settings.data_dir,
            epochs=proxy.epochs,
            width=proxy.width,
            resolution=proxy.resolution,
            batch_size=proxy.batch_size,
            limit=settings.limit,
            seed=proxy.seed,
            threads=max(1, int(settings.cpus_per_trial)),
        )

    def load_dataset(self):
        """The proxy dataset, loaded and split as a run loads it."""
        from attnsearch.datasets import load_dataset

        return load_dataset(
            self.dataset,
            data_dir=self.data_dir,
            resolution=self.resolution,
            seed=self.seed,
            limit=self.limit,
        )

    def resolved_batch_size(self, train_size: int) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return SMALL_BATCH if train_size < SMALL_DATASET else LARGE_BATCH

    def proxy_config(self, dataset, **changes: Any):
        """The :class:`ProxyConfig` a trial of this run gets (as ``run_search`` builds it)."""
        from attnsearch.training import ProxyConfig

        cfg = ProxyConfig(
            epochs=self.epochs,
            batch_size=self.resolved_batch_size(len(dataset.train_x)),
            width=self.width,
            resolution=None,  # the dataset was resized once at load time
            flip=self.dataset.startswith(("cifar", "folder")),
            seed=self.seed,
        )
        return dataclasses.replace(cfg, **changes) if changes else cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EvalResult:
    """One architecture trained under one proxy for several seeds.

    Attributes:
        seeds: the trial seeds used (a search trial's seed is its trial number).
        accuracies: final validation accuracy per seed (0-1).
        seconds: wall seconds per seed (training and evaluation).
        histories: validation accuracy after each epoch, per seed.
        train_losses: mean training loss of each epoch, per seed.
        val_losses: validation cross-entropy after each epoch, per seed.
    """

    seeds: list[int]
    accuracies: list[float]
    seconds: list[float]
    histories: list[list[float]] = field(default_factory=list)
    train_losses: list[list[float]] = field(default_factory=list)
    val_losses: list[list[float]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Mean accuracy over seeds."""
        return stats.mean(self.accuracies)

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        return stats.sd(self.accuracies)

    @property
    def interval(self) -> tuple[float, float] | None:
        """95 % t-interval of the mean accuracy; ``None`` with a single seed."""
        return stats.t_interval(self.accuracies) if len(self.accuracies) > 1 else None

    def to_json(self) -> dict[str, Any]:
        ci = self.interval
        return {
            "seeds": list(self.seeds),
            "accuracies": list(self.accuracies),
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "interval95": list(ci) if ci is not None else None,
            "seconds": math.fsum(self.seconds),
            "seconds_per_seed": list(self.seconds),
            "histories": [list(h) for h in self.histories],
            "train_losses": [list(h) for h in self.train_losses],
            "val_losses": [list(h) for h in self.val_losses],
        }


def evaluate_architecture(
    arch,
    proxy_config,
    dataset,
    seeds: int | Iterable[int],
    *,
    report: Callable[[int, Any], None] | None = None,
    threads: int | None = None,
    device=None,
) -> EvalResult:
    """Train ``arch`` once per seed, each time exactly as a search trial with that seed.

    Args:
        arch: an :class:`~attnsearch.architecture.Architecture`.
        proxy_config: the :class:`~attnsearch.training.ProxyConfig` (see
            :meth:`ProxySettings.proxy_config`).
        dataset: the loaded :class:`~attnsearch.datasets.Dataset`.
        seeds: the trial seeds, or a count K for seeds ``0..K-1``.
        report: called after each seed with ``(seed, TrainResult)``.
        threads: torch threads while training (a trial uses its ``cpus_per_trial``);
            ``None`` leaves the current setting. Restored afterwards.
        device: where to train (default: as a trial, CUDA if visible).

    Raises:
        TrainingError: a seed's training diverged.
    """
    import torch

    from attnsearch.training import train_candidate

    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise InputError("evaluate needs at least one seed")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    result = EvalResult(seeds=seed_list, accuracies=[], seconds=[])
    try:
        for seed in seed_list:
            t0 = time.perf_counter()
            r = train_candidate(arch, dataset, proxy_config, trial_seed=seed, device=device)
            result.seconds.append(time.perf_counter() - t0)
            result.accuracies.append(r.accuracy)
            result.histories.append(list(r.history))
            result.train_losses.append(list(r.train_losses))
            result.val_losses.append(list(r.val_losses))
            if report is not None:
                report(seed, r)
    finally:
        torch.set_num_threads(before)
    return result
