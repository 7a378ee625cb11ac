"""The results folder of one search (DESIGN.md §6) and everything written into it.

:class:`RunDir` is the one owner of ``results/<name>/``: its creation (atomic), its lock,
``run.yaml`` (a typed :class:`RunRecord`: settings + provenance; unknown keys refused), the
execution log (``executions.jsonl``), the Ray-session record (``ray_session.json``) and the
trial checkpoints under ``tune/``. :class:`TrialRecord` is the typed view of an Optuna
trial's user attributes. Every file's name lives in :mod:`attnsearch.rundir._names`; the
others ask :class:`RunDir` for the path. The derived files (``pareto.*``, ``trials.csv``,
``summary.json``) are written by :mod:`attnsearch.results` through :meth:`RunDir.write_text`
and :meth:`RunDir.atomic_open`.
"""

from __future__ import annotations

from attnsearch.rundir._files import (
    Execution,
    find_checkpoint,
    load_checkpoint,
    read_executions,
    record_execution,
    save_checkpoint,
)
from attnsearch.rundir._layout import RunDir
from attnsearch.rundir._names import (
    CHECKPOINT_FILE,
    EXECUTIONS,
    JOURNAL,
    LATENCY_TABLE,
    RESULTS_DIR,
    RUN_YAML,
    SQLITE,
    NoCheckpointError,
    ResultsError,
)
from attnsearch.rundir._record import RunRecord, provenance
from attnsearch.rundir._trial import FailKind, TrialRecord

__all__ = [
    "CHECKPOINT_FILE",
    "EXECUTIONS",
    "JOURNAL",
    "LATENCY_TABLE",
    "RESULTS_DIR",
    "RUN_YAML",
    "SQLITE",
    "Execution",
    "FailKind",
    "NoCheckpointError",
    "ResultsError",
    "RunDir",
    "RunRecord",
    "TrialRecord",
    "find_checkpoint",
    "load_checkpoint",
    "provenance",
    "read_executions",
    "record_execution",
    "save_checkpoint",
]
