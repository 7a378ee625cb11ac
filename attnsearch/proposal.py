"""Ask → budget → tell: the Ray-free core of the search (the samplers are in
:mod:`attnsearch.samplers`, re-exported here).

:class:`Proposer` asks an Optuna study for a candidate, costs it (:mod:`attnsearch.cost`:
analytic FLOPs by default, microseconds per candidate) and hands out only candidates under
the budget. What happens to an
over-budget candidate is the ``policy``:

* ``"reject"`` — it is told to Optuna at once as infeasible and the study is asked again
  (bounded attempts). This is what the searcher did before repair existed.
* ``"repair"`` — it is told as infeasible, and the cheapest deterministic change that
  brings it under the budget (:func:`repair`: greedily give the unit with the largest
  saving its cheapest choice) is enqueued with ``study.enqueue_trial`` and asked at once,
  so the repaired parameters are what the sampler records and later learns from.
* ``"spread"`` — like ``"repair"``, but the repair aims at a target drawn uniformly between
  the cheapest architecture's cost and the budget (seeded by ``seed`` and the trial
  number), so repaired candidates spread over the feasible range instead of piling up
  just under the budget.

No candidate that was never trained carries an accuracy in the storage: an over-budget
candidate is told as ``PRUNED`` with no values, its constraint ``flops_over_budget > 0``
set (Optuna 5's TPE counts such trials as infeasible and steers away from them; NSGA-II
and GP ignore them), and an impossible one as ``FAIL``. A trained candidate is told
``[accuracy, cost]`` with a constraint ``<= 0``.

The cost is an :class:`attnsearch.cost.Cost`: the analytic deploy FLOPs, or a predicted
latency (a :class:`~attnsearch.cost.LatencyCost`, nanoseconds, an integer); the cost says
what the second objective is and how a trial records it
(:meth:`~attnsearch.cost.Cost.objective`, :meth:`~attnsearch.cost.Cost.record`), and
``flops`` (the analytic deploy FLOPs) is recorded on every trial either way. The Ray Tune
searcher (:mod:`attnsearch.search._searcher`) is a thin adapter over :class:`Proposer`: it adds the
trial-record attributes (:class:`attnsearch.rundir.TrialRecord`), re-runs of interrupted
trials (:attr:`Proposer.pending_reruns`) and the outcome of training (:meth:`Proposer.finish`).
Trials already in the study (a warm start, enqueued references) are simply history to it.

Re-exported from :mod:`attnsearch.samplers`: :func:`make_sampler` (the samplers by name),
:func:`warm_start` (copy an earlier run's finished trials on the same space into a study)
and the constraint key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from attnsearch.cost import BudgetTooLowError, Cost, Feasible, FlopsCost
from attnsearch.errors import InputError
from attnsearch.rundir import FailKind, TrialRecord
from attnsearch.samplers import CONSTRAINT, SAMPLERS, make_sampler, warm_start
from attnsearch.settings import POLICIES

if TYPE_CHECKING:  # the architecture imports torch: kept out of `run --help`'s imports
    import optuna

    from attnsearch.architecture import Architecture, SlotChoice
    from attnsearch.spaces import Options, SearchSpace

__all__ = [
    "CONSTRAINT",
    "POLICIES",
    "SAMPLERS",
    "BudgetTooLowError",
    "ProposalError",
    "Proposer",
    "StorageWriteError",
    "guard_storage",
    "make_sampler",
    "repair",
    "warm_start",
]


CostFn = Callable[["Architecture"], int]


class ProposalError(InputError):
    """No candidate under the budget could be proposed (attempts exhausted): the search stops
    (exit 1) with one line saying what to do."""

    exit_code = 1


class StorageWriteError(InputError):
    """The study's storage refused a write (full disk, read-only journal): the search stops
    (exit 1) instead of training candidates whose results cannot be kept."""

    exit_code = 1


def _with_unit(space: SearchSpace, arch: Architecture, unit: int, choice: SlotChoice):
    slots = list(arch.slots)
    for s in space.unit_slots(unit):
        slots[s] = choice
    return dataclasses.replace(arch, slots=tuple(slots))


def repair(
    space: SearchSpace,
    arch: Architecture,
    budget: int,
    cost_fn: CostFn,
    cheapest: Sequence[SlotChoice],
    *,
    savings_cache: dict | None = None,
) -> Architecture:
    """The cheapest deterministic change that brings ``arch`` under ``budget``.

    Greedy: units are switched to their cheapest choice in order of decreasing saving
    (ties: the unit listed first) until the cost is under ``budget``; the largest savings
    first, so few units change. Costs are taken as additive over units (FLOPs are), so a
    unit's saving depends only on its own choice and is measured once (``savings_cache``
    keeps them between calls). The result's cost is checked with ``cost_fn``.

    Raises:
        ProposalError: even the all-cheapest switches leave it over budget.
    """
    cost = cost_fn(arch)
    if cost <= budget:
        return arch
    cache = {} if savings_cache is None else savings_cache
    ranked = []
    for i, (unit, choice) in enumerate(zip(space.units, cheapest, strict=True)):
        current = arch.slots[space.unit_slots(unit)[0]]
        if current == choice:
            continue
        key = (unit, current)
        if key not in cache:
            cache[key] = cost - cost_fn(_with_unit(space, arch, unit, choice))
        if cache[key] > 0:
            ranked.append((-cache[key], i, unit, choice))
    slots = list(arch.slots)
    for neg_saving, _, unit, choice in sorted(ranked, key=lambda r: (r[0], r[1])):
        for s in space.unit_slots(unit):
            slots[s] = choice
        cost += neg_saving
        if cost <= budget:
            break
    fixed = dataclasses.replace(arch, slots=tuple(slots))
    if cost_fn(fixed) > budget:
        raise ProposalError(f"cannot repair {arch.summary()} under the budget {budget}")
    return fixed


class Proposer:
    """Hands out candidates under a budget from an Optuna study (no Ray, no training).

    Args:
        study: a multi-objective study (accuracy max, cost min).
        space: the :class:`~attnsearch.spaces.SearchSpace`.
        options: per-unit valid choices at the proxy width (``space.options(width)``).
        budget: the hard limit on ``cost_fn``, in its unit (FLOPs; nanoseconds for latency).
        cost_fn: the :class:`~attnsearch.cost.Cost` (an int per architecture); the analytic
            deploy FLOPs when ``None``.
        policy: ``"reject"``, ``"repair"`` or ``"spread"`` (module docstring).
        seed: seeds the repair targets of ``"spread"``.
        max_attempts: asks per :meth:`propose` before giving up (:class:`ProposalError`).
        epochs: a trained result with fewer epochs was stopped early (:meth:`finish`).
        checked: what ``cost_fn.check_budget(budget, space, options)`` returned (a run checks
            once, before anything is created); ``None``: checked here.

    Raises:
        BudgetTooLowError: ``budget`` is below the cheapest architecture.
        InputError: unknown policy.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        options: Options,
        budget: int,
        cost_fn: Cost | None = None,
        policy: str = "reject",
        *,
        seed: int = 0,
        max_attempts: int = 10_000,
        epochs: int = 1,
        checked: Feasible | None = None,
    ):
        if policy not in POLICIES:
            raise InputError(f"unknown budget policy {policy!r}; valid: {', '.join(POLICIES)}")
        self.flops_fn: Cost = FlopsCost(space)
        if cost_fn is None:
            cost_fn = self.flops_fn
        self.study = study
        self.space = space
        self.options = options
        self.budget = int(budget)
        self.cost_fn = cost_fn
        self.policy = policy
        self.seed = seed
        self.max_attempts = max_attempts
        self.epochs = epochs
        if checked is None:
            checked = cost_fn.check_budget(self.budget, space, options)
        elif checked.cost is not cost_fn or checked.budget != self.budget:
            raise ValueError("checked is the check of another cost or budget")
        self.cheapest_arch, self.min_cost = checked.cheapest, checked.min_cost
        cheapest = space.unit_choices(checked.cheapest, options)
        assert cheapest is not None  # made from these options
        self.cheapest: list[SlotChoice] = cheapest  # per unit, for repair
        self._savings: dict = {}  # (unit, choice) -> saving of its cheapest choice
        self._sampler_state: dict[int, dict] = {}  # repaired trial number -> sampler attrs
        self.asked = 0  # every study.ask() made here
        self.over_budget = 0  # asks over the budget (told infeasible, never trained)
        self.invalid = 0  # asks with no valid combination (told failed)
        self.repaired = 0  # over-budget asks replaced by a repaired candidate
        # the interrupted trials to run again, oldest first (attnsearch.search._resume.Rerun):
        # read from the storage at each ask (the driver sets it), never kept only in memory
        self.pending_reruns: Callable[[], list] = list
        self.interrupted = False  # Ctrl-C: trials stopped before their last epoch stay RUNNING

    @property
    def wasted(self) -> int:
        """Asks that did not become candidates."""
        return self.over_budget + self.invalid

    def _inherit_sampler_state(self, trial) -> None:
        """A repaired trial takes over its original's generation (NSGA-II/III bookkeeping).

        Every parameter of a repaired trial is fixed, so the sampler never samples it and a
        genetic sampler never stamps its generation on it; such a sampler counts a
        generation's members by that stamp and would otherwise never leave its random first
        generation. The storage call is the one Optuna's own samplers use.
        """
        origin = trial.user_attrs.get("repaired_from")
        if origin is None:
            return
        storage = self.study._storage
        present = storage.get_trial_system_attrs(trial._trial_id)
        for key, value in self._sampler_state.pop(origin, {}).items():
            if key not in present:
                storage.set_trial_system_attr(trial._trial_id, key, value)

    def target(self, number: int) -> int:
        """The cost a repair of trial ``number`` aims under (the budget, or a spread target)."""
        if self.policy != "spread":
            return self.budget
        import random

        u = random.Random(self.seed * 1_000_003 + number).random()
        return int(self.min_cost + u * (self.budget - self.min_cost))

    def propose(self) -> tuple[optuna.Trial, Architecture, int]:
        """The next candidate under the budget: ``(trial, architecture, cost)``.

        A pending re-run (:attr:`pending_reruns`) comes first, with the same parameters. The trial
        stays RUNNING; the caller trains it and calls :meth:`tell` or :meth:`finish`.

        Raises:
            ProposalError: ``max_attempts`` asks in a row were over the budget or invalid.
            StorageWriteError: the storage refused a write.
        """
        with guard_storage(self.study):
            return self._propose()

    def _propose(self):
        import optuna

        reruns = self.pending_reruns()
        if reruns:  # a trial that was running when the driver stopped: same params
            rerun = reruns[0]
            self.study.enqueue_trial(
                rerun.params,
                user_attrs=TrialRecord.attrs(
                    resumed_from=rerun.trial, resume_checkpoint=rerun.checkpoint or ""
                ),
            )
        for _ in range(self.max_attempts):
            trial = self.study.ask()
            self.asked += 1
            self._inherit_sampler_state(trial)
            try:
                arch = self.space.sample(trial, self.options)
            except ValueError as e:  # jointly impossible at the proxy width
                TrialRecord.set(trial, invalid=str(e), trained=False)
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self.invalid += 1
                continue
            cost = int(self.cost_fn(arch))
            TrialRecord.set(trial, flops=int(self.flops_fn(arch)), **self.cost_fn.record(cost))
            TrialRecord.set(trial, architecture=arch.to_json(), digest=arch.digest())
            trial.set_constraint(CONSTRAINT, float(cost - self.budget))
            # a reference enqueued by the driver trains even over budget (--references all:
            # context, never on the front); its constraint still tells the sampler
            if cost <= self.budget or trial.user_attrs.get("role"):
                return trial, arch, cost
            TrialRecord.set(trial, trained=False, over_budget=True)
            self.over_budget += 1
            if self.policy in ("repair", "spread"):
                fixed = repair(
                    self.space,
                    arch,
                    self.target(trial.number),
                    self.cost_fn,
                    self.cheapest,
                    savings_cache=self._savings,
                )
                TrialRecord.set(trial, repaired_to=fixed.digest())
                self._sampler_state[trial.number] = {
                    k: v
                    for k, v in self.study._storage.get_trial_system_attrs(trial._trial_id).items()
                    if k.endswith(":generation")
                }
                self.study.enqueue_trial(
                    self.space.params(fixed, self.options),
                    user_attrs=TrialRecord.attrs(repaired_from=trial.number),
                )
                self.repaired += 1
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        raise ProposalError(
            f"no candidate under the budget in {self.max_attempts} samples in a row "
            f"({self.policy} policy); use --policy spread (repairs every over-budget "
            "candidate), raise the budget or narrow the space"
        )

    def tell(
        self,
        trial: optuna.Trial,
        values: Sequence[float] | None = None,
        state: optuna.trial.TrialState | None = None,
    ) -> None:
        """Record a trained candidate's ``[accuracy, cost]``, or a final ``state`` (no values).

        Raises:
            StorageWriteError: the storage refused the write (never swallowed: a search
                whose results cannot be stored must stop).
        """
        import optuna

        with guard_storage(self.study):
            if values is not None:
                TrialRecord.set(trial, trained=True)
                self.study.tell(trial, [float(v) for v in values])
            else:
                self.study.tell(trial, state=state or optuna.trial.TrialState.FAIL)

    def finish(self, trial: optuna.Trial, result: dict | None, *, error: bool = False) -> None:
        """Record a trained trial's outcome from its last reported ``result`` (or a failure).

        A result with fewer than :attr:`epochs` epochs was stopped early (``PRUNED``, no
        values: its accuracy is not comparable). After Ctrl-C (:attr:`interrupted`) a trial
        stopped before its last epoch is left RUNNING, so a resume re-runs it. The second
        objective is the cost recorded when the trial was proposed.
        """
        import optuna

        result = result or {}
        failed = bool(result.get("failed")) or result.get("accuracy") is None
        stopped_early = not failed and int(result.get("epoch", 0)) < self.epochs
        if self.interrupted and (error or failed or stopped_early):
            return  # Ctrl-C before its last epoch: stays RUNNING, a resume re-runs it
        with guard_storage(self.study):
            if failed or (error and stopped_early):
                kind = FailKind.CANDIDATE if result.get("failed") else FailKind.WORKER
                reason = result.get("failed") or "the trial's worker failed"
                TrialRecord.set(trial, fail_kind=kind, fail_reason=str(reason))
                self.tell(trial, state=optuna.trial.TrialState.FAIL)
                return
            # its last epoch was reported: complete, whatever happened to the worker after
            kept = ("history", "train_seconds", "node_id", "epoch", "resume_error")
            TrialRecord.set(trial, **{k: result[k] for k in kept if k in result})
            # the worker's timers (Tune hands a searcher its results flattened: timings/...)
            timings = result.get("timings") or {
                k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("timings/")
            }
            if timings:
                TrialRecord.set(trial, timings=timings)
            TrialRecord.set(trial, trained=True)
            if stopped_early:  # ASHA stopped it: its accuracy is not comparable
                TrialRecord.set(trial, early_stopped=True)
                self.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return
            cost = self.cost_fn.recorded(trial.user_attrs)
            self.tell(trial, [float(result["accuracy"]), self.cost_fn.objective(cost)])


def ask(core: Proposer) -> tuple:
    """The core's next candidate and the config a worker trains it from:
    ``(optuna_trial, {"architecture", "flops", "trial_number", "digest", ...})``."""
    trial, arch, cost = core.propose()
    config = {
        "architecture": arch.to_json(),
        "flops": trial.user_attrs["flops"],
        "trial_number": trial.number,
        "digest": arch.digest(),
        **core.cost_fn.record(cost),
    }
    if trial.user_attrs.get("role"):  # a reference or a repeat: shown apart, not counted
        config["role"] = trial.user_attrs["role"]
    resume = trial.user_attrs.get("resume_checkpoint")
    if resume:
        config["resume_checkpoint"] = resume
    return trial, config


class guard_storage:  # noqa: N801  (a context manager, named like contextlib's)
    """Turns a storage write failure into :class:`StorageWriteError` (one line, exit 1).

    Optuna's journal backend raises ``OSError`` for a full disk or a read-only file (its
    lock or its append); SQLite raises SQLAlchemy's ``OperationalError``. Optuna's own
    refusals (telling a finished trial twice) are ``RuntimeError``/``ValueError`` and pass
    through unchanged: they are bugs, not the disk.
    """

    def __init__(self, study):
        self.study = study

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, InputError):
            return False
        if isinstance(exc, OSError) or type(exc).__name__ == "OperationalError":
            text = str(exc).strip()
            why = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else "")
            raise StorageWriteError(
                f"cannot write the study {self.study.study_name!r} to its storage "
                f"({type(exc).__name__}: {why or 'I/O error'}); the search stopped. Free "
                "disk space or fix the folder's permissions, then resume with --resume"
            ) from exc
        return False
