"""RunSettings: everything a search needs, fully resolved; the one set of defaults.

The ``attnsearch run`` options take their defaults from these fields (and from
:class:`attnsearch.proxy.ProxyConfig` for the proxy options); nothing is repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from attnsearch.proposal import POLICIES, SAMPLERS
from attnsearch.proxy import ProxyConfig, config_from_dict

__all__ = ["POLICIES", "SAMPLERS", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """One search, fully resolved; stored in run.yaml (enough to resume).

    The run folder and the Optuna study name are not settings: the
    :class:`attnsearch.rundir.RunDir` owns them.
    """

    budget: int  # hard FLOPs limit on the deploy network (latency runs: the space's dearest)
    space: str = "resnet50"  # shipped space name or path to a .yaml file
    dataset: str = "digits"  # digits | synthetic | cifar10 | cifar100 | folder:PATH
    data_dir: str = "data"  # where CIFAR archives live (downloaded there when absent)
    trials: int = 24  # trained (feasible) trials to complete
    sampler: str = "tpe-mv"  # tpe-mv | tpe | nsga2 | random | gp (benchmarks/RESULTS.md §9)
    policy: str = "spread"  # over-budget candidates: reject | repair | spread (proposal.py)
    concurrency: int = 2  # trials running at once
    gpus_per_trial: float = 0.0  # fractional GPUs pack several small proxies on one device
    cpus_per_trial: float = 1.0  # CPU threads per trial
    address: str | None = None  # existing Ray cluster; None starts a local one
    limit: int | None = None  # cap on training images (quick runs)
    early_stop: bool = False  # ASHA early stopping on accuracy
    proxy: ProxyConfig = field(default_factory=ProxyConfig)  # how each candidate trains
    latency_budget_ms: float | None = None  # a latency budget: the cost is predicted latency
    latency_table: str | None = None  # the table predicting it (path, absolute)
    warm_start: str | None = None  # an earlier run (folder) whose trials seed this one

    # the proxy fields a user sets through `run` options (the proxy owns their defaults)
    PROXY_OPTIONS = ("epochs", "batch_size", "width", "resolution", "seed")

    @classmethod
    def make(cls, budget: int, **options: Any) -> RunSettings:
        """Settings from flat options (``epochs=1, width=0.25, seed=3, ...``).

        Proxy options go into :attr:`proxy`; ``seed`` seeds both the sampler and training;
        horizontal flips follow the dataset (natural images only).
        """
        proxy = {k: options.pop(k) for k in cls.PROXY_OPTIONS if k in options}
        dataset = options.get("dataset", dataclasses.MISSING)
        if dataset is dataclasses.MISSING:
            dataset = cls.__dataclass_fields__["dataset"].default
        proxy["flip"] = dataset.startswith(("cifar", "folder"))
        return cls(budget=budget, proxy=ProxyConfig(**proxy), **options)

    # the proxy's fields that are also run-level facts, read through the settings
    @property
    def epochs(self) -> int:
        return self.proxy.epochs

    @property
    def width(self) -> float:
        return self.proxy.width

    @property
    def batch_size(self) -> int:
        return self.proxy.batch_size

    @property
    def resolution(self) -> int | None:
        return self.proxy.resolution

    @property
    def seed(self) -> int:
        """The sampler's seed, and the training base seed."""
        return self.proxy.seed

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with run-level and/or proxy-level (flat) fields changed."""
        proxy = {k: changes.pop(k) for k in self.PROXY_OPTIONS if k in changes}
        if proxy:
            changes["proxy"] = dataclasses.replace(self.proxy, **proxy)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> RunSettings:
        """Settings from :meth:`to_dict`'s form; unknown keys and wrong types refused."""
        return config_from_dict(cls, data, where)
