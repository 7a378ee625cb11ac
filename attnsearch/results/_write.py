"""Writing the derived files (trials.csv, pareto.*, summary.json) from the storage."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from attnsearch import safeio
from attnsearch.dataset_specs import dataset_caveat
from attnsearch.results._front import (
    _profiles,
    _save_profiles,
    pareto_members,
    reference_entries,
    signal,
    verdict,
)
from attnsearch.results._measure import front_on_means, measurements
from attnsearch.results._plot import plot_pareto
from attnsearch.results._storage import _summary, trial_rows
from attnsearch.rundir import ResultsError, RunDir


def write_results(run: RunDir, study) -> dict[str, Any]:
    """Rewrite trials.csv, pareto.*, summary.json from the storage; return the summary.

    Everything is read and checked first, and every target checked (a regular file or
    absent), before the first file is replaced: a corrupted storage leaves the files as
    they were. ``counts`` counts search trials by status; ``references`` and ``repeats``
    count the extra trials that trained.
    """
    run_dir = run.path
    budget = run.settings.budget
    latency = budget is not None and budget.is_latency  # ranked on it: a column of its own
    rows = trial_rows(study, latency=latency)
    ms = measurements(study)
    front = front_on_means(ms.search)
    refs = list(ms.references.values())
    profiles = _profiles(run_dir, {m.record.digest: m.record.architecture for m in front + refs})
    members = pareto_members(run_dir, study, ms, profiles)
    references = reference_entries(run_dir, ms, profiles, members)
    judged = verdict(members, references, ms.noise)
    for path in run.derived_files:
        safeio.check_target(path, ResultsError)
    _save_profiles(run_dir, profiles)
    _write_csv(run, run.trials_csv, rows)
    run.write_text(run.pareto_json, safeio.json_dumps(members, indent=2) + "\n")
    _write_csv(
        run,
        run.pareto_csv,
        [
            {
                "trial": m["trial"],
                "accuracy": m["accuracy"],
                "accuracy_std": m["accuracy_std"],
                "seeds": len(m["accuracies"]),
                "flops": m["flops"],
                **({"latency_ms": m.get("latency_ms", "")} if latency else {}),
                "params": m["params"],
                "macs_conv_linear": m["macs_conv_linear"],
                "architecture": _summary(m["architecture"]),
            }
            for m in members
        ],
    )
    plot_pareto(run.pareto_png, rows, members, budget, references)
    counts: dict[str, int] = {}
    for r in rows:
        if r["role"] == "search":
            counts[r["status"]] = counts.get(r["status"], 0) + 1
    counts["references"] = sum(len(r["accuracies"]) for r in references)
    counts["repeats"] = sum(len(m.accuracies) - 1 for m in ms.search)
    summary = {
        "members": members,
        "references": references,
        "verdict": judged,
        "noise": ms.noise.to_json(),
        "signal": signal(ms),
        "caveat": dataset_caveat(run.settings.dataset),
        "counts": counts,
        "budget": budget.to_dict() if budget is not None else None,  # kind, value, text
    }
    run.write_text(run.summary_json, safeio.json_dumps(summary, indent=2) + "\n")
    return {**summary, "run_dir": str(run_dir)}


def _write_csv(run: RunDir, path: Path, rows: list[dict[str, Any]]) -> None:
    with run.atomic_open(path, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
