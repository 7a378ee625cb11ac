"""The trial schema: :class:`TrialRecord`, the typed view of an Optuna trial's user attributes.

The one module that writes trial attributes (``set_user_attr``)."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from attnsearch.rundir._names import ResultsError


# ---- the trial record -------------------------------------------------------------------
class FailKind(str, enum.Enum):
    """Why a trial is FAIL in the storage (user attribute ``fail_kind``)."""

    CANDIDATE = "candidate"  # training failed by itself (non-finite loss, ...)
    WORKER = "worker"  # the trial's worker died
    INTERRUPTED = "interrupted"  # the driver stopped while it trained; re-run as a new trial
    NEVER_STARTED = "never_started"  # asked, but the driver stopped before it ran

    @property
    def counts_as_failure(self) -> bool:
        """True for the candidate's own failures (they bound a search); stops are not."""
        return self in (FailKind.CANDIDATE, FailKind.WORKER)


@dataclass(frozen=True)
class TrialRecord:
    """The typed view of an Optuna trial's user attributes (what the search records)."""

    architecture: dict | None = None  # Architecture.to_json()
    digest: str | None = None  # Architecture.digest()
    flops: int | None = None  # analytic deploy FLOPs
    latency_ms: float | None = None  # predicted latency (a search with a latency budget)
    trained: bool | None = None  # False: over budget, never trained
    over_budget: bool | None = None  # True: its cost was over the budget (never trained)
    repaired_to: str | None = None  # over budget: the digest of the repair enqueued for it
    repaired_from: int | None = None  # a repair: the over-budget trial it replaces
    warm_start_from: str | None = None  # copied from another run ("STUDY#N"): not this run's
    invalid: str | None = None  # why the sample cannot be built at the proxy width
    config: dict | None = None  # what the Tune trial received
    tune_trial_id: str | None = None  # finds its checkpoints
    history: list | None = None  # validation accuracy per epoch
    train_seconds: float | None = None
    node_id: str | None = None  # Ray node that trained it
    epoch: int | None = None  # last epoch reported
    early_stopped: bool = False  # ASHA stopped it (PRUNED)
    fail_kind: FailKind | None = None
    fail_reason: str | None = None  # one human line
    resumed_from: int | None = None  # the interrupted trial this one re-runs
    resume_checkpoint: str | None = None  # the checkpoint folder it continues from
    role: str | None = None  # None: a search trial; "reference" or "repeat" (not counted)
    reference: str | None = None  # role=reference: the network's name (e.g. ResNet-18)
    paper: str | None = None  # role=reference: the paper's title
    fits: bool | None = None  # role=reference: under the budget
    repeat_of: int | None = None  # role=repeat: the search trial it re-evaluates
    seed: int | None = None  # trial seed given to training (the trial number)
    resume_error: str | None = None  # that checkpoint was unreadable: trained from scratch
    timings: dict | None = None  # the worker's timers at its last report (trial_overhead.py)
    extra: dict = field(default_factory=dict)  # attributes this version does not know

    @classmethod
    def from_user_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """The record of these attributes; a known one of the wrong type or out of range
        raises ``ValueError`` naming it (what a storage someone else wrote may hold)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in attrs.items() if k in names}
        for key, value in known.items():
            problem = _attr_problem(key, value)
            if problem:
                raise ValueError(f"user attribute {key!r} is {_short(value)}, not {problem}")
        extra = {k: v for k, v in attrs.items() if k not in names}
        if known.get("fail_kind") is not None:
            try:
                known["fail_kind"] = FailKind(known["fail_kind"])
            except ValueError:
                extra["fail_kind"] = known.pop("fail_kind")
        if known.get("resume_checkpoint") == "":
            known["resume_checkpoint"] = None
        return cls(**known, extra=extra)

    @classmethod
    def of(cls, trial: Any) -> TrialRecord:
        """The record of an Optuna ``Trial`` or ``FrozenTrial``.

        Raises:
            ResultsError: an attribute of the wrong type or range (a corrupted storage).
        """
        try:
            return cls.from_user_attrs(trial.user_attrs)
        except ValueError as e:
            raise ResultsError(
                f"the study storage is corrupted or foreign: trial {trial.number}'s {e}"
            ) from None

    def to_user_attrs(self) -> dict[str, Any]:
        """The non-default attributes, JSON-ready (``fail_kind`` as its value)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or (f.name == "early_stopped" and not value):
                continue
            out[f.name] = value.value if isinstance(value, FailKind) else value
        out.update(self.extra)
        return out

    @staticmethod
    def attrs(**fields: Any) -> dict[str, Any]:
        """The named record fields as user attributes (``fail_kind`` as its value): what
        ``enqueue_trial(user_attrs=...)`` and ``create_trial(user_attrs=...)`` are given.

        Raises:
            KeyError: a name that is not a field (every attribute written is one).
        """
        names = {f.name for f in dataclasses.fields(TrialRecord)} - {"extra"}
        out: dict[str, Any] = {}
        for key, value in fields.items():
            if key not in names:
                raise KeyError(f"TrialRecord has no field {key!r}")
            out[key] = value.value if isinstance(value, FailKind) else value
        return out

    @staticmethod
    def set(trial: Any, **fields: Any) -> None:
        """Set the named record fields as user attributes of a live Optuna ``Trial``."""
        for key, value in TrialRecord.attrs(**fields).items():
            trial.set_user_attr(key, value)

    @staticmethod
    def set_stored(study: Any, trial: Any, **fields: Any) -> None:
        """Like :meth:`set` for a ``FrozenTrial`` of ``study`` (written to the storage)."""
        for key, value in TrialRecord.attrs(**fields).items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)

    @property
    def counts_as_failure(self) -> bool:
        return self.fail_kind is not None and self.fail_kind.counts_as_failure

    @property
    def copied(self) -> bool:
        """Copied by a warm start from another run: history for the sampler only, never this
        run's search trial, reference, repeat, failure or re-run (its numbers are the other
        run's)."""
        return self.warm_start_from is not None

    @property
    def status_reason(self) -> str:
        return self.fail_reason or self.invalid or ""


# what each TrialRecord attribute may hold when read back from a storage (None: absent)
_MAX_COUNT = 2**63  # FLOPs, epochs, trial numbers and seeds stay far below
_ATTR_KINDS = {
    "architecture": "dict",
    "config": "dict",
    "timings": "dict",
    "history": "numbers",
    "flops": "count",
    "epoch": "count",
    "resumed_from": "count",
    "repeat_of": "count",
    "seed": "count",
    "latency_ms": "number",
    "train_seconds": "number",
    "trained": "bool",
    "early_stopped": "bool",
    "fits": "bool",
    "over_budget": "bool",
    "repaired_from": "count",
    "fail_kind": "str",
}
_KIND_TEXT = {
    "dict": "a JSON object",
    "numbers": "a list of finite numbers",
    "count": f"an integer 0..{_MAX_COUNT}",
    "number": "a finite number ≥ 0",
    "bool": "true or false",
    "str": "a string",
}


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _attr_problem(key: str, value: Any) -> str | None:
    """What ``value`` should be as the attribute ``key``, if it is not; None when fine."""
    if value is None:
        return None
    kind = _ATTR_KINDS.get(key, "str")
    ok = {
        "dict": lambda v: isinstance(v, dict),
        "numbers": lambda v: isinstance(v, list) and all(_finite(x) for x in v),
        "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_COUNT,
        "number": lambda v: _finite(v) and v >= 0,
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }[kind](value)
    return None if ok else _KIND_TEXT[kind]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."
