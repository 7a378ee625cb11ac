"""Train one architecture for several seeds exactly as a search trial trains it.

One code path: :func:`evaluate_architecture` calls
:func:`attnsearch.search.run_trial` — the whole training of a Tune trial — with the run's
:class:`~attnsearch.settings.RunSettings` (its proxy, its ``cpus_per_trial`` threads) and a
trial seed; a search trial's seed is its trial number, so evaluating with that number
reproduces the trial's accuracy. The settings come from a run
(``RunDir.open(...).settings``) or from ``run``'s defaults with some options changed
(:func:`settings_from_options`, which applies ``run``'s batch-size rule,
:func:`attnsearch.settings.batch_size_for`). :class:`~attnsearch.settings.ProxySettings`
(defined with the other settings, and named here too) is the flat option set ``fidelity``
passes to its worker processes; it builds the same RunSettings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from attnsearch import stats
from attnsearch.errors import InputError
from attnsearch.settings import ProxySettings

__all__ = [
    "EvalResult",
    "ProxySettings",
    "evaluate_architecture",
    "settings_from_options",
]


def settings_from_options(**given: Any):
    """``run``'s settings (without a budget: nothing is searched) for the given proxy
    options, and the dataset they load.

    ``given`` holds the proxy options of ``evaluate``/``fidelity`` (``dataset``,
    ``data_dir``, ``epochs``, ``width``, ``resolution``, ``batch_size``, ``limit``,
    ``seed``, ``threads``); ``None`` means ``run``'s default. Without ``batch_size``,
    ``run``'s rule picks it from the training-set size, as ``run`` does.

    Returns:
        ``(RunSettings, Dataset)``.
    """
    proxy = ProxySettings.defaults(**given)
    dataset = proxy.load_dataset()
    return proxy.run_settings(len(dataset.train_x)), dataset


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
