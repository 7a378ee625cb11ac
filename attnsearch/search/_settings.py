"""RunSettings: everything a search needs, fully resolved; the one set of defaults.

The ``attnsearch run`` options take their defaults from these fields (and from
:class:`attnsearch.proxy.ProxyConfig` for the proxy options); nothing is repeated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from attnsearch.proposal import POLICIES, SAMPLERS
from attnsearch.proxy import (
    OPTIMIZER_DEFAULTS,
    ConfigError,
    ProxyConfig,
    bounded,
    check_bounds,
    config_from_dict,
)

__all__ = ["POLICIES", "REFERENCE_MODES", "SAMPLERS", "RunSettings", "batch_size_for"]

REFERENCE_MODES = ("fit", "all", "none")
SMALL_DATASET = 10_000  # fewer training images than this: smaller batches, more steps


def batch_size_for(train_size: int) -> int:
    """The proxy batch size when none is given: 32 under 10,000 training images, else 128.

    The one place for this rule (``run`` and ``evaluate`` apply it after loading the data).
    """
    return 32 if train_size < SMALL_DATASET else 128


@dataclass(frozen=True)
class RunSettings:
    """One search, fully resolved; stored in run.yaml (enough to resume).

    The run folder and the Optuna study name are not settings: the
    :class:`attnsearch.rundir.RunDir` owns them.
    """

    # hard FLOPs limit on the deploy network (latency runs: the space's dearest architecture)
    budget: int = bounded(dataclasses.MISSING, 1, 10**30)
    space: str = "resnet50"  # shipped space name or path to a .yaml file
    dataset: str = "digits"  # digits | clutter[:SIZE] | mnist-clutter[:P] | synthetic | cifar10|100 | folder:PATH
    data_dir: str = "data"  # where CIFAR archives live (downloaded there when absent)
    trials: int = bounded(24, 1, 1_000_000)  # trained (feasible) trials to complete
    sampler: str = "tpe-mv"  # tpe-mv | tpe | nsga2 | random | gp (benchmarks/RESULTS.md §9)
    policy: str = "spread"  # over-budget candidates: reject | repair | spread (proposal.py)
    concurrency: int = bounded(2, 1, 4096)  # trials running at once
    # GPUs per trial; fractions pack several proxies on a GPU; None: auto, resolved against
    # the cluster once connected (search/_gpus.py: a share of its GPUs, or 0 without any)
    gpus_per_trial: float | None = bounded(None, 0, 1024)
    cpus_per_trial: float = bounded(1.0, 0, 4096, lo_open=True)  # CPU threads per trial
    address: str | None = None  # existing Ray cluster; None starts a local one
    storage: str | None = None  # Tune's checkpoints: path/URI every node sees; None: run folder
    # seconds of training between a trial's intermediate checkpoints (checked at each epoch's
    # end; 0: every epoch); the final weights are always saved. A resume re-trains what an
    # interrupted trial did since its last one: under 2x this, or one epoch if longer
    checkpoint_interval: float = bounded(60.0, 0, 10**9)
    # seconds a trial may run; 0: no limit; None: automatic (10x the longest finished trial)
    trial_timeout: float | None = bounded(None, 0, 10**9)
    limit: int | None = bounded(None, 1, 10**9)  # cap on training images (quick runs)
    early_stop: bool = False  # ASHA early stopping on accuracy
    # seeds per reference, and per front (or within-noise) trial once the search is done;
    # 2: the fewest that measure a seed sd (one architecture's seed sd is ~5 points on the
    # digits proxy, issue 10), at +1 training per re-evaluated trial
    repeats: int = bounded(2, 1, 100)
    references: str = "fit"  # the papers' networks the space can express: fit | all | none
    proxy: ProxyConfig = field(default_factory=ProxyConfig)  # how each candidate trains
    # a latency budget (ms): the cost is the predicted latency
    latency_budget_ms: float | None = bounded(None, 0, 10**9, lo_open=True)
    latency_table: str | None = None  # the table predicting it (path, absolute)
    warm_start: str | None = None  # an earlier run (folder) whose trials seed this one

    def __post_init__(self) -> None:
        check_bounds(self, "settings")
        checks = (("sampler", SAMPLERS), ("policy", POLICIES), ("references", REFERENCE_MODES))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"settings: {name} must be one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )

    # the proxy fields a user sets through `run` options (the proxy owns their defaults)
    PROXY_OPTIONS = ("epochs", "batch_size", "width", "resolution", "seed", "optimizer")

    @classmethod
    def make(cls, budget: int, **options: Any) -> RunSettings:
        """Settings from flat options (``epochs=1, width=0.25, seed=3, ...``).

        Proxy options go into :attr:`proxy`; ``seed`` seeds both the sampler and training;
        horizontal flips follow the dataset (natural images only).
        """
        proxy = {k: options.pop(k) for k in cls.PROXY_OPTIONS if k in options}
        for key, value in OPTIMIZER_DEFAULTS.get(proxy.get("optimizer", "sgd"), {}).items():
            proxy.setdefault(key, value)  # an unknown optimizer: ProxyConfig refuses it
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
    def optimizer(self) -> str:
        return self.proxy.optimizer

    @property
    def seed(self) -> int:
        """The sampler's seed, and the training base seed."""
        return self.proxy.seed

    def load_dataset(self):
        """The proxy dataset, loaded and split as every trial of this run sees it."""
        from attnsearch.datasets import load_dataset

        return load_dataset(
            self.dataset,
            data_dir=self.data_dir,
            resolution=self.resolution,
            seed=self.seed,
            limit=self.limit,
            check=self.check_training_memory,
        )

    def check_training_memory(
        self, shape: tuple[int, int, int], train_images: int, num_classes: int
    ) -> None:
        """Refuse proxy trainings whose activations alone exceed the memory available
        (the plain backbone at this width, a batch of this run's images; checked on the
        meta device, before any training allocates them).

        Raises:
            InputError: one line with both figures.
        """
        import torch

        from attnsearch.errors import InputError
        from attnsearch.memory import activation_bytes, check_fits
        from attnsearch.spaces import load_space

        try:
            backbone = load_space(self.space).backbone
        except InputError:
            backbone = "resnet18"  # the smallest: still a lower bound
        # a fresh run picks its batch size after loading: the smaller of the two bounds it
        batch = min(self.proxy.batch_size, batch_size_for(train_images))
        need = activation_bytes(backbone, self.width, shape, batch, num_classes)
        device = "cuda" if torch.cuda.is_available() and self.gpus_per_trial > 0 else "cpu"
        check_fits(
            f"training {backbone} at width {self.width:g} on batches of {batch} images of "
            f"{'×'.join(map(str, shape))}",
            need,
            device,
            advice="use a smaller --resolution, --batch-size or --width",
        )

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
