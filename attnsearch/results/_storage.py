"""The Optuna storage of a run folder, and its trials read as rows (``trials.csv``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from attnsearch.rundir import ResultsError, RunDir, TrialRecord
from attnsearch.safeio import show

ROLE_REFERENCE, ROLE_REPEAT = "reference", "repeat"  # TrialRecord.role of the extra trials
ROLE_TEXT_COPY = "warm start from"  # trials.csv role of a trial copied from another run


def storage_for(run_dir: str | Path):
    """The Optuna storage of a run folder (created if absent): a journal file.

    Appending one line per operation makes every result durable as soon as it is told,
    and it is about 4x cheaper per trial than SQLite, which matters when the budget
    rejects many candidates. ``optuna-dashboard results/NAME/study.journal`` opens it.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(RunDir(Path(run_dir).resolve()).journal)))


def open_study(run_dir: str | Path, study_name: str):
    """Load the run's Optuna study; a missing or damaged storage gives a one-line error."""
    import optuna

    run_dir = Path(run_dir)
    journal, db = RunDir(run_dir).journal, RunDir(run_dir).sqlite
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for path in (journal, db):  # Optuna appends to them: never through a planted symlink
        if os.path.lexists(path) and (path.is_symlink() or not path.is_file()):
            raise ResultsError(
                f"{show(path)} is not a regular file (a symlink, FIFO or device); refused"
            )
    if journal.is_file():
        path = journal
        with open(journal, "rb") as f:  # a record cut by a crash or a copy: refuse, touch nothing
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    raise ResultsError(
                        f"{show(journal)} is corrupted (its last record is truncated)"
                    )
        try:
            study = optuna.load_study(study_name=study_name, storage=storage_for(run_dir))
            study.get_trials(deepcopy=False)  # replay the whole journal: damage shows here
            return study
        except Exception as e:
            raise ResultsError(
                f"{show(path)} is corrupted or foreign ({type(e).__name__})"
            ) from None
    if db.is_file():
        with open(db, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise ResultsError(f"{db} is corrupted (not an SQLite database)")
        try:
            storage = optuna.storages.RDBStorage(f"sqlite:///{db.resolve()}")
            return optuna.load_study(study_name=study_name, storage=storage)
        except Exception as e:
            raise ResultsError(f"{db} is corrupted or foreign ({type(e).__name__})") from None
    raise ResultsError(f"{journal} is missing: the search's Optuna storage is gone")


def _trial_status(t, record: TrialRecord) -> str:
    import optuna

    if t.state == optuna.trial.TrialState.COMPLETE:
        if record.invalid:
            return "invalid"
        return "complete" if record.trained else "infeasible"
    if record.trained is False:  # never trained: over the budget (PRUNED) or impossible (FAIL)
        return "invalid" if record.invalid else "infeasible"
    return t.state.name.lower()


def _accuracy(t) -> float:
    """The trial's accuracy (its first objective), checked: a storage someone else wrote
    may hold anything there."""
    value = t.values[0] if isinstance(t.values, list | tuple) and t.values else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ResultsError(
            f"the study storage is corrupted or foreign: trial {t.number}'s accuracy is "
            f"{value!r:.40}, not a number in [0, 1]"
        )
    return float(value)


def _trained_record(t) -> TrialRecord:
    """The record of a trained trial, with what the front needs present and parseable."""
    record = TrialRecord.of(t)
    problem = None
    if not isinstance(record.architecture, dict):
        problem = "has no architecture"
    elif record.flops is None:
        problem = "has no FLOPs"
    elif not isinstance(record.digest, str):
        problem = "has no digest"
    if problem:
        raise ResultsError(f"the study storage is corrupted or foreign: trial {t.number} {problem}")
    _summary(record.architecture, t.number)
    return record


def trial_rows(study, *, latency: bool = False) -> list[dict[str, Any]]:
    """One row per Optuna trial, for trials.csv; ``latency`` (a run with a latency budget,
    ranked on it): a ``latency_ms`` column, each trial's predicted latency, after ``flops``."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t)
        status = _trial_status(t, record)
        complete = status == "complete"
        rows.append(
            {
                "trial": t.number,
                "status": status,
                "accuracy": _accuracy(t) if complete and t.values else "",
                "flops": record.flops if record.flops is not None else "",
                **({"latency_ms": _or_blank(record.latency_ms)} if latency else {}),
                "trained": bool(record.trained),
                "train_seconds": round(record.train_seconds or 0.0, 3) if complete else "",
                "node_id": record.node_id or "",
                "digest": record.digest or "",
                "reason": record.status_reason,
                "architecture": (
                    _summary(record.architecture, t.number) if record.architecture else ""
                ),
                "role": _role_text(record),
            }
        )
    return rows


def _or_blank(value: Any) -> Any:
    return "" if value is None else value


def _role_text(record: TrialRecord) -> str:
    if record.copied:
        return f"{ROLE_TEXT_COPY} {record.warm_start_from}"
    if record.role == ROLE_REFERENCE:
        return f"reference {record.reference}"
    if record.role == ROLE_REPEAT:
        return f"repeat of {record.repeat_of}"
    return "search"


def _summary(arch_json: Any, trial: int | None = None) -> str:
    """The summary of a stored architecture: a JSON object, never a string (which
    :meth:`Architecture.from_json` would open as a file path)."""
    from attnsearch.architecture import Architecture, ArchitectureError

    where = f"trial {trial}'s " if trial is not None else ""
    if not isinstance(arch_json, dict):
        raise ResultsError(
            f"the study storage is corrupted or foreign: {where}architecture is "
            f"{arch_json!r:.40}, not a JSON object"
        )
    try:
        return Architecture.from_json(arch_json).summary()
    except ArchitectureError as e:
        raise ResultsError(
            f"the study storage is corrupted or foreign: {where}architecture: {e}"
        ) from None
