"""Every settings type, the one default of each value, and the config machinery.

At the bottom of the package: it imports only :mod:`attnsearch.errors`,
:mod:`attnsearch.budget` and :mod:`attnsearch.dataset_specs` at the top, and never torch
(the CLI builds its options from these fields, and ``--help`` must stay instant). The
types:

- :class:`ProxyConfig`: how a candidate is trained (run.yaml's ``proxy:``);
- :class:`RunSettings`: one search, fully resolved (run.yaml), with its one
  :class:`~attnsearch.budget.Budget`; ``evaluate`` and ``fidelity`` use it without one;
- :class:`ProxySettings`: the proxy options of ``evaluate``/``fidelity`` as flat, picklable
  data (``fidelity``'s worker processes get it); it builds the same RunSettings.

A numeric field declares its range once (:func:`bounded`); ``__post_init__`` checks it and
the CLI's option types read it (:meth:`attnsearch.cli._numbers.Number.of`). A field's
``help`` metadata is the text of the command-line option that sets it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from attnsearch.budget import Budget
from attnsearch.dataset_specs import (
    DATASETS,
    DatasetName,
    dataset_caveat,
    dataset_forms,
    dataset_names,
    flips_by_default,
)
from attnsearch.errors import InputError
from attnsearch.settings._config import (
    ConfigError,
    _check_choice,
    bounded,
    check_bounds,
    config_from_dict,
    field_bounds,
    field_default,
    field_help,
    number_problem,
    setting,
)
from attnsearch.settings._proxy import (
    MAX_SEED,
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    ProxyConfig,
    batch_size_for,
)

__all__ = [
    "DATASETS",
    "MAX_SEED",
    "OPTIMIZERS",
    "OPTIMIZER_DEFAULTS",
    "POLICIES",
    "REFERENCE_MODES",
    "SAMPLERS",
    "ConfigError",
    "DatasetName",
    "ProxyConfig",
    "ProxySettings",
    "RunSettings",
    "batch_size_for",
    "bounded",
    "check_bounds",
    "config_from_dict",
    "dataset_caveat",
    "dataset_forms",
    "dataset_names",
    "default_device",
    "field_bounds",
    "field_default",
    "field_help",
    "flips_by_default",
    "number_problem",
    "setting",
]

SAMPLERS = ("nsga2", "tpe", "tpe-mv", "random", "gp")  # attnsearch.samplers.make_sampler
POLICIES = ("reject", "repair", "spread")  # over-budget candidates (attnsearch.proposal)
REFERENCE_MODES = ("fit", "all", "none")  # attnsearch.references.MODES is this tuple


def default_device() -> str:
    """Where work that names no device runs: ``"cuda"`` when torch sees a GPU, else
    ``"cpu"`` — a trial's training, the memory check before a run, a run's latency table
    and ``latency-table --device auto``, a fidelity panel's journal. The one rule."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---- one search ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSettings:
    """One search, fully resolved; stored in run.yaml (enough to resume).

    The run folder and the Optuna study name are not settings: the
    :class:`attnsearch.rundir.RunDir` owns them.
    """

    # the hard limit (FLOPs of the deploy network, or its predicted latency) as parsed from
    # --budget; None: a command that searches nothing (evaluate, fidelity)
    budget: Budget | None = None
    space: str = setting(  # shipped space name or path to a .yaml file
        "resnet50", help="Shipped space name (see `attnsearch spaces`) or a .yaml file."
    )
    dataset: str = setting(  # the proxy task: digits trains in seconds on a CPU
        "digits",
        help=dataset_forms(compact=True),
    )
    data_dir: str = setting(  # where CIFAR archives live (downloaded there when absent)
        "data", help="Where CIFAR archives are (downloaded there when absent)."
    )
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
    # cap on training images (quick runs); None: all of them
    limit: int | None = bounded(None, 1, 10**9, help="Use at most this many training images.")
    early_stop: bool = False  # ASHA early stopping on accuracy
    # seeds per reference, and per front (or within-noise) trial once the search is done;
    # 2: the fewest that measure a seed sd (one architecture's seed sd is ~5 points on the
    # digits proxy, issue 10), at +1 training per re-evaluated trial
    repeats: int = bounded(2, 1, 100)
    references: str = "fit"  # the papers' networks the space can express: fit | all | none
    proxy: ProxyConfig = field(default_factory=ProxyConfig)  # how each candidate trains
    latency_table: str | None = None  # a latency budget's table (path; relative: in the run)
    warm_start: str | None = None  # an earlier run (folder) whose trials seed this one

    def __post_init__(self) -> None:
        check_bounds(self, "settings")
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ConfigError(f"settings: budget must be a Budget, got {self.budget!r}")
        _check_choice(self, "sampler", SAMPLERS, "settings")
        _check_choice(self, "policy", POLICIES, "settings")
        _check_choice(self, "references", REFERENCE_MODES, "settings")

    # the proxy fields a user sets through `run` options (the proxy owns their defaults)
    PROXY_OPTIONS = ("epochs", "batch_size", "width", "resolution", "seed", "optimizer", "flip")

    @classmethod
    def make(cls, budget: Budget | None = None, **options: Any) -> RunSettings:
        """Settings from flat options (``epochs=1, width=0.25, seed=3, ...``).

        Proxy options go into :attr:`proxy`; ``seed`` seeds both the sampler and training;
        horizontal flips follow the dataset (:func:`flips_by_default`) unless ``flip`` is
        given (not ``None``); an optimizer brings its
        lr and weight decay (:data:`OPTIMIZER_DEFAULTS`).
        """
        proxy = {k: options.pop(k) for k in cls.PROXY_OPTIONS if k in options}
        for key, value in OPTIMIZER_DEFAULTS.get(proxy.get("optimizer", "sgd"), {}).items():
            proxy.setdefault(key, value)  # an unknown optimizer: ProxyConfig refuses it
        dataset = options.get("dataset", field_default(cls, "dataset"))
        if proxy.get("flip") is None:
            proxy["flip"] = flips_by_default(dataset)
        return cls(budget=budget, proxy=ProxyConfig(**proxy), **options)

    @classmethod
    def from_options(
        cls,
        opts: dict[str, Any],
        *,
        latency_table: str | None = None,
        warm_start: str | None = None,
    ) -> RunSettings:
        """A new run's settings from ``run``'s options (``opts["budget"]``: the parsed
        :class:`~attnsearch.budget.Budget`). A ``batch_size`` of None is left to the
        proxy's default here; ``run`` picks it from the dataset once it is loaded."""
        names = {f.name for f in dataclasses.fields(cls)} | set(cls.PROXY_OPTIONS)
        skip = {"budget", "latency_table", "warm_start"}
        given = {k: v for k, v in opts.items() if k in names and k not in skip}
        if given.get("batch_size") is None:
            given.pop("batch_size", None)
        if latency_table is not None:
            given["latency_table"] = latency_table
        if warm_start is not None:
            given["warm_start"] = warm_start
        return cls.make(opts["budget"], **given)

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
    def flip(self) -> bool:
        return self.proxy.flip

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
        from attnsearch.memory import activation_bytes, check_fits
        from attnsearch.spaces import load_space

        try:
            backbone = load_space(self.space).backbone
        except InputError:
            backbone = "resnet18"  # the smallest: still a lower bound
        # a fresh run picks its batch size after loading: the smaller of the two bounds it
        batch = min(self.proxy.batch_size, batch_size_for(train_images))
        need = activation_bytes(backbone, self.width, shape, batch, num_classes)
        gpus = self.gpus_per_trial  # None: auto, a share of a GPU where there is one
        device = default_device() if gpus is None or gpus > 0 else "cpu"
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

    # ---- resume: what may change, what must match ----
    # settings a resumed search may change (what the user types is used, and saved in
    # run.yaml); every other one must match run.yaml
    RESUMABLE_CHANGES = (
        "trials",
        "concurrency",
        "gpus_per_trial",
        "cpus_per_trial",
        "trial_timeout",
        "checkpoint_interval",
    )
    # the cluster and the storage: only those this invocation names (--address or
    # RAY_ADDRESS, --storage); the ones run.yaml records are shown, never used (joining a
    # cluster runs its code, and a results folder may come from anywhere)
    NAMED_AGAIN = ("address", "storage")
    # given again on a resume, these must equal what run.yaml holds
    COMPARED = (
        "budget",
        "space",
        "dataset",
        "data_dir",
        "epochs",
        "sampler",
        "policy",
        "seed",
        "width",
        "resolution",
        "batch_size",
        "optimizer",
        "flip",
        "limit",
        "early_stop",
        "repeats",
        "references",
    )

    def resumed(self, opts: dict[str, Any], explicit: set[str], where: str) -> RunSettings:
        """These (stored) settings with the changes a resume may make; an option given on
        the command line that conflicts with them is refused, naming ``where`` (run.yaml).

        Raises:
            InputError: one line naming the option, both values and how to go on.
        """
        for key in self.COMPARED:
            if key not in explicit or opts[key] == getattr(self, key):
                continue
            flag, given = f"--{key.replace('_', '-')}", opts[key]
            if isinstance(given, Budget):
                given = given.text
            if isinstance(given, bool):  # a --X/--no-X switch: name the one given
                flag, given = (flag if given else f"--no-{flag[2:]}"), ""
            raise InputError(
                f"{flag}{f' {given}' if given != '' else ''} conflicts with the search being "
                f"resumed ({key.replace('_', ' ')} {getattr(self, key)} in {where}); resume "
                "with the same value or start a new --name"
            )
        changes = {k: opts[k] for k in self.RESUMABLE_CHANGES if k in explicit}
        changes.update({k: opts[k] if k in explicit else None for k in self.NAMED_AGAIN})
        return self.replace(**changes)

    # ---- run.yaml ----
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["budget"] = self.budget.to_dict() if self.budget is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "settings") -> RunSettings:
        """Settings from :meth:`to_dict`'s form (a run's: the budget is required); unknown
        keys and wrong types refused. The form of earlier versions (an int ``budget``, with
        ``latency_budget_ms`` and ``budget_text``) is read here, the one place."""
        old = ("budget_text", "latency_budget_ms")
        if isinstance(data, dict) and (
            any(k in data for k in old) or isinstance(data.get("budget"), int | float)
        ):
            data = _upgrade(data, where)
        if isinstance(data, dict) and "budget" not in data:
            raise ConfigError(f"{where}: missing key(s) budget")
        return config_from_dict(cls, data, where)


def _upgrade(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Settings of an earlier run.yaml, in today's form: ``budget`` held FLOPs (in a
    latency run the space's dearest architecture, a limit that did not bind),
    ``latency_budget_ms`` the latency limit or None, ``budget_text`` what the user wrote."""
    data = dict(data)
    flops, text = data.get("budget"), data.pop("budget_text", "")
    ms = data.pop("latency_budget_ms", None)
    if isinstance(flops, dict) or not isinstance(text, str):
        raise ConfigError(f"{where}: budget has the wrong type (neither form)")
    try:
        if ms is not None:
            data["budget"] = Budget("latency", ms, text).to_dict()
        elif flops is not None:
            data["budget"] = Budget("flops", flops, text).to_dict()
    except InputError as e:
        raise ConfigError(f"{where}: {e}") from None
    return data


# ---- evaluate and fidelity ----------------------------------------------------------------
def _run_default(name: str) -> Any:
    """``run``'s default of a flat option (a RunSettings or ProxyConfig field)."""
    cls = ProxyConfig if name in RunSettings.PROXY_OPTIONS else RunSettings
    return field_default(cls, name)


@dataclass(frozen=True)
class ProxySettings:
    """The proxy options of ``evaluate``/``fidelity`` as flat, picklable data (``fidelity``'s
    worker processes get it); every default is ``run``'s (the fields above).

    Attributes:
        dataset: dataset spec (``digits``, ``clutter``, ``cifar10``, ...).
        data_dir: where downloaded datasets live.
        epochs: proxy epochs.
        width: proxy channel multiplier.
        resolution: proxy image size (``None``: the dataset's own).
        batch_size: proxy batch size; ``None`` applies ``run``'s rule.
        optimizer: ``sgd`` or ``adamw`` (with that optimizer's lr and weight decay).
        flip: horizontal flips (``None``: the dataset's default, :func:`flips_by_default`).
        limit: cap on training images.
        seed: the run's seed (splits the data; added to each trial seed).
        threads: torch threads per trial (the run's ``cpus_per_trial``).
    """

    dataset: str = _run_default("dataset")
    data_dir: str = _run_default("data_dir")
    epochs: int = _run_default("epochs")
    width: float = _run_default("width")
    resolution: int | None = _run_default("resolution")
    batch_size: int | None = None  # run's rule from the training-set size (batch_size_for)
    optimizer: str = _run_default("optimizer")
    flip: bool | None = None  # None: the dataset's default (flips_by_default)
    limit: int | None = _run_default("limit")
    seed: int = _run_default("seed")
    # torch threads per evaluation: a run's CPU threads per trial, at least one
    threads: int = bounded(
        max(1, int(_run_default("cpus_per_trial"))),
        1,
        4096,
        help="Torch threads per evaluation (a run's --cpus-per-trial).",
    )

    def __post_init__(self) -> None:
        check_bounds(self, "proxy settings")

    @classmethod
    def defaults(cls, **overrides: Any) -> ProxySettings:
        """``run``'s defaults, with ``overrides`` (``None`` values are ignored)."""
        return cls(**{k: v for k, v in overrides.items() if v is not None})

    def run_settings(self, train_size: int | None = None) -> RunSettings:
        """The :class:`RunSettings` (without a budget) a run with these options has
        (``train_size``: apply ``run``'s batch-size rule when ``batch_size`` is None)."""
        options = dataclasses.asdict(self)
        options["cpus_per_trial"] = float(options.pop("threads"))
        batch = options.pop("batch_size")
        if batch is None and train_size is not None:
            batch = self.resolved_batch_size(train_size)
        if batch is not None:
            options["batch_size"] = batch
        return RunSettings.make(None, **options)

    def load_dataset(self):
        """The proxy dataset, loaded and split as a run loads it."""
        return self.run_settings().load_dataset()

    def resolved_batch_size(self, train_size: int) -> int:
        return self.batch_size if self.batch_size is not None else batch_size_for(train_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
