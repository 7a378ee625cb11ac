"""What a search's study yields (DESIGN.md §6): the Optuna storage, trials.csv, pareto.*.

The Optuna storage is the single source of truth; every other file is derived from it
and can be rewritten at any time (``attnsearch pareto NAME`` does, for running searches).
Paths and run settings come from :class:`attnsearch.rundir.RunDir`, which owns the folder.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from attnsearch.rundir import JOURNAL, SQLITE, ResultsError, RunDir, TrialRecord

__all__ = [
    "ResultsError",
    "open_study",
    "storage_for",
    "pareto_members",
    "write_results",
    "trial_rows",
]


def storage_for(run_dir: str | Path):
    """The Optuna storage of a run folder (created if absent): a journal file.

    Appending one line per operation makes every result durable as soon as it is told,
    and it is about 4x cheaper per trial than SQLite, which matters when the budget
    rejects many candidates. ``optuna-dashboard results/NAME/study.journal`` opens it.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(run_dir).resolve() / JOURNAL)))


def open_study(run_dir: str | Path, study_name: str):
    """Load the run's Optuna study; a missing or damaged storage gives a one-line error."""
    import optuna

    run_dir = Path(run_dir)
    journal, db = run_dir / JOURNAL, run_dir / SQLITE
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if journal.is_file():
        path = journal
        with open(journal, "rb") as f:  # a record cut by a crash or a copy: refuse, touch nothing
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    raise ResultsError(f"{journal} is corrupted (its last record is truncated)")
        try:
            study = optuna.load_study(study_name=study_name, storage=storage_for(run_dir))
            study.get_trials(deepcopy=False)  # replay the whole journal: damage shows here
            return study
        except Exception as e:
            raise ResultsError(f"{path} is corrupted or foreign ({type(e).__name__})") from None
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


def trial_rows(study) -> list[dict[str, Any]]:
    """One row per Optuna trial, for trials.csv."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.of(t)
        status = _trial_status(t, record)
        complete = status == "complete"
        rows.append(
            {
                "trial": t.number,
                "status": status,
                "accuracy": t.values[0] if complete and t.values else "",
                "flops": record.flops if record.flops is not None else "",
                "trained": bool(record.trained),
                "train_seconds": round(record.train_seconds or 0.0, 3) if complete else "",
                "node_id": record.node_id or "",
                "digest": record.digest or "",
                "reason": record.status_reason,
                "architecture": _summary(record.architecture) if record.architecture else "",
            }
        )
    return rows


def _summary(arch_json: dict) -> str:
    from attnsearch.architecture import Architecture

    return Architecture.from_json(arch_json).summary()


def _profiles(run_dir: Path, archs: dict[str, dict]) -> dict[str, dict]:
    """Deploy params and conv+linear MACs per architecture digest (cached in the folder)."""
    from attnsearch.api import profile

    cache_path = run_dir / "profiles.json"
    try:
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    except (OSError, json.JSONDecodeError):
        cache = {}
    changed = False
    for digest, arch in archs.items():
        if digest not in cache:
            p = profile(arch)
            cache[digest] = {
                "params": p["params"],
                "macs_conv_linear": p["macs_conv_linear"],
                "flops": p["flops"],
            }
            changed = True
    if changed:
        _atomic_write(cache_path, json.dumps(cache, indent=1))
    return cache


def pareto_members(run_dir: str | Path, study) -> list[dict[str, Any]]:
    """The feasible Pareto front as the pareto.json contract (sorted by FLOPs)."""
    run_dir = Path(run_dir)
    front = [(t, TrialRecord.of(t)) for t in study.best_trials]
    front = [(t, r) for t, r in front if r.trained and "warm_start_from" not in r.extra]
    profiles = _profiles(run_dir, {r.digest: r.architecture for _, r in front})
    members = []
    for t, r in front:
        prof = profiles[r.digest]
        members.append(
            {
                "trial": t.number,
                "architecture": r.architecture,
                "accuracy": float(t.values[0]),
                "flops": int(r.flops),
                **({"latency_ms": float(r.latency_ms)} if r.latency_ms is not None else {}),
                "params": int(prof["params"]),
                "macs_conv_linear": int(prof["macs_conv_linear"]),
                "digest": r.digest,
                "tune_trial_id": r.tune_trial_id,
            }
        )
    members.sort(key=lambda m: (m["flops"], -m["accuracy"]))
    return members


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(run: RunDir, study) -> dict[str, Any]:
    """Rewrite trials.csv, pareto.csv, pareto.json and pareto.png from the storage."""
    run_dir = run.path
    rows = trial_rows(study)
    _write_csv(run_dir / "trials.csv", rows)
    members = pareto_members(run_dir, study)
    _atomic_write(run_dir / "pareto.json", json.dumps(members, indent=2) + "\n")
    _write_csv(
        run_dir / "pareto.csv",
        [
            {
                "trial": m["trial"],
                "accuracy": m["accuracy"],
                "flops": m["flops"],
                "params": m["params"],
                "macs_conv_linear": m["macs_conv_linear"],
                "architecture": _summary(m["architecture"]),
            }
            for m in members
        ],
    )
    plot_pareto(run_dir / "pareto.png", rows, members, run.settings.budget)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"members": members, "counts": counts, "run_dir": str(run_dir)}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    os.replace(tmp, path)


def plot_pareto(path: Path, rows: list[dict], members: list[dict], budget: int) -> None:
    """Accuracy vs GFLOPs: trained trials, the front, infeasible candidates, the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    done = [r for r in rows if r["status"] == "complete"]
    infeasible = [r for r in rows if r["status"] == "infeasible" and r["flops"] != ""]
    failed = [r for r in rows if r["status"] == "fail" and r["flops"] != ""]
    if done:
        ax.scatter(
            [r["flops"] / 1e9 for r in done],
            [r["accuracy"] for r in done],
            s=18,
            c="tab:blue",
            alpha=0.6,
            label=f"trained ({len(done)})",
        )
    if members:
        ax.plot(
            [m["flops"] / 1e9 for m in members],
            [m["accuracy"] for m in members],
            "o-",
            c="tab:red",
            ms=6,
            label=f"Pareto front ({len(members)})",
        )
    ymin = min([r["accuracy"] for r in done], default=0.0)
    if infeasible:
        ax.scatter(
            [r["flops"] / 1e9 for r in infeasible],
            [ymin] * len(infeasible),
            marker="x",
            c="grey",
            s=18,
            label=f"over budget, not trained ({len(infeasible)})",
        )
    if failed:
        ax.scatter(
            [r["flops"] / 1e9 for r in failed],
            [ymin] * len(failed),
            marker="v",
            c="black",
            s=18,
            label=f"failed ({len(failed)})",
        )
    ax.axvline(budget / 1e9, ls="--", c="tab:green", label=f"budget {budget / 1e9:.3g} GFLOPs")
    ax.set_xlabel("FLOPs of the deploy network (G)")
    ax.set_ylabel("proxy validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
