"""Train one architecture for several seeds exactly as a search trial trains it.

One code path: :func:`evaluate_architecture` calls
:func:`attnsearch.search.run_trial` — the whole training of a Tune trial — with the run's
:class:`~attnsearch.search.RunSettings` (its proxy, its ``cpus_per_trial`` threads) and a
trial seed; a search trial's seed is its trial number, so evaluating with that number
reproduces the trial's accuracy. The settings come from a run
(``RunDir.open(...).settings``) or from ``run``'s defaults with some options changed
(:func:`settings_from_options`, which applies ``run``'s batch-size rule,
:func:`attnsearch.search._settings.batch_size_for`).
:class:`ProxySettings` is the flat option set ``fidelity`` passes to its worker
processes; it builds the same RunSettings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from attnsearch import stats
from attnsearch.errors import InputError

__all__ = [
    "EvalResult",
    "ProxySettings",
    "evaluate_architecture",
    "run_defaults",
    "settings_from_options",
]

# RunSettings needs a budget; evaluating one given architecture searches nothing
_NO_BUDGET = 10**30  # evaluating one architecture applies no budget: the largest allowed


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


def settings_from_options(**given: Any):
    """``run``'s settings for the given proxy options, and the dataset they load.

    ``given`` holds the proxy options of ``evaluate``/``fidelity`` (``dataset``,
    ``data_dir``, ``epochs``, ``width``, ``resolution``, ``batch_size``, ``limit``,
    ``seed``, ``threads``); ``None`` means ``run``'s default. Without ``batch_size``,
    ``run``'s rule picks it from the training-set size, as ``run`` does.

    Returns:
        ``(RunSettings, Dataset)``.
    """
    from attnsearch.search import RunSettings
    from attnsearch.search._settings import batch_size_for

    opts = {k: v for k, v in given.items() if v is not None}
    batch = opts.pop("batch_size", None)
    threads = opts.pop("threads", None)
    if threads is not None:
        opts["cpus_per_trial"] = float(threads)
    settings = RunSettings.make(_NO_BUDGET, **opts)
    dataset = settings.load_dataset()
    settings = settings.replace(
        batch_size=batch if batch is not None else batch_size_for(len(dataset.train_x))
    )
    return settings, dataset


@dataclass(frozen=True)
class ProxySettings:
    """The proxy options as flat, picklable data (``fidelity``'s worker processes get it).

    Attributes:
        dataset: dataset spec (``digits``, ``clutter``, ``cifar10``, ...).
        data_dir: where downloaded datasets live.
        epochs: proxy epochs.
        width: proxy channel multiplier.
        resolution: proxy image size (``None``: the dataset's own).
        batch_size: proxy batch size; ``None`` applies ``run``'s rule.
        optimizer: ``sgd`` or ``adamw`` (with that optimizer's lr and weight decay).
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
    optimizer: str
    limit: int | None
    seed: int
    threads: int

    @classmethod
    def defaults(cls, **overrides: Any) -> ProxySettings:
        """``run``'s defaults, with ``overrides`` (``None`` values are ignored)."""
        d = run_defaults()
        keys = ("dataset", "data_dir", "epochs", "width", "resolution", "optimizer")
        values = {k: d[k] for k in keys}
        values.update(
            batch_size=None,  # run resolves it from the training-set size
            limit=d["limit"],
            seed=d["seed"],
            threads=max(1, int(d["cpus_per_trial"])),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def run_settings(self, train_size: int | None = None):
        """The :class:`~attnsearch.search.RunSettings` a run with these options has
        (``train_size``: apply ``run``'s batch-size rule when ``batch_size`` is None)."""
        from attnsearch.search import RunSettings

        options = dataclasses.asdict(self)
        options["cpus_per_trial"] = float(options.pop("threads"))
        batch = options.pop("batch_size")
        if batch is None and train_size is not None:
            batch = self.resolved_batch_size(train_size)
        if batch is not None:
            options["batch_size"] = batch
        return RunSettings.make(_NO_BUDGET, **options)

    def load_dataset(self):
        """The proxy dataset, loaded and split as a run loads it."""
        return self.run_settings().load_dataset()

    def resolved_batch_size(self, train_size: int) -> int:
        from attnsearch.search._settings import batch_size_for

        return self.batch_size if self.batch_size is not None else batch_size_for(train_size)

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
    settings,
    dataset,
    seeds: int | Iterable[int],
    *,
    report: Callable[[int, Any], None] | None = None,
    device=None,
) -> EvalResult:
    """Train ``arch`` once per seed through :func:`attnsearch.search.run_trial`, each time
    exactly as a search trial with that seed (trial number) trains.

    Args:
        arch: an :class:`~attnsearch.architecture.Architecture`.
        settings: the run's :class:`~attnsearch.search.RunSettings` (its ``proxy`` and
            ``cpus_per_trial`` threads; torch's thread count is restored afterwards).
        dataset: the loaded :class:`~attnsearch.datasets.Dataset` (``settings.load_dataset()``).
        seeds: the trial seeds, or a count K for seeds ``0..K-1``.
        report: called after each seed with ``(seed, TrialOutcome)``.
        device: where to train (default: as a trial, CUDA if visible).

    Raises:
        TrainingError: a seed's training failed (non-finite loss, ...).
    """
    import torch

    from attnsearch.search import run_trial
    from attnsearch.training import TrainingError

    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise InputError("evaluate needs at least one seed")
    before = torch.get_num_threads()
    result = EvalResult(seeds=seed_list, accuracies=[], seconds=[])
    try:
        for seed in seed_list:
            out = run_trial(
                arch, settings.proxy, dataset, seed, threads=settings.cpus_per_trial, device=device
            )
            if out.failed is not None:
                raise TrainingError(f"seed {seed}: {out.failed}")
            result.seconds.append(out.train_seconds)
            result.accuracies.append(out.accuracy)
            result.histories.append(list(out.history))
            result.train_losses.append(list(out.train_losses))
            result.val_losses.append(list(out.val_losses))
            if report is not None:
                report(seed, out)
    finally:
        torch.set_num_threads(before)
    return result
