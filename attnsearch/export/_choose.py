"""Choosing what to export from a search's results folder: a trial, its checkpoint."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attnsearch.export._errors import ExportError

__all__ = ["check_state", "choose_trial", "find_checkpoint", "load_state"]


def _run_dir(results_dir: str | Path, name: str):
    from attnsearch.rundir import RunDir

    run = RunDir.open(results_dir, name)
    return run.path, run


def _trial_by_number(study, number: int, name: str):
    import optuna

    trials = study.get_trials(deepcopy=False)
    found = [t for t in trials if t.number == number]
    if not found:
        span = f"0–{max(t.number for t in trials)}" if trials else "none yet"
        raise ExportError(f"search {name!r} has no trial {number} (trials: {span})")
    t = found[0]
    from attnsearch.rundir import TrialRecord

    record = TrialRecord.of(t)  # types checked: an architecture is never a path to open
    if t.state != optuna.trial.TrialState.COMPLETE:
        raise ExportError(
            f"trial {number} of {name!r} is {t.state.name.lower()}, not trained; "
            "pick a completed trial (see trials.csv)"
        )
    if record.copied:
        raise ExportError(
            f"trial {number} of {name!r} is a copy of trial {record.warm_start_from} of "
            "another run (a warm start): export it from that run"
        )
    if record.invalid:
        raise ExportError(f"trial {number} of {name!r} was invalid: {record.invalid}")
    if not record.trained:
        if record.latency_ms is not None:
            detail = f" latency budget (predicted {record.latency_ms:g} ms)"
        else:
            flops = record.flops
            detail = f" FLOPs budget ({flops:,} FLOPs)" if isinstance(flops, int) else " budget"
        raise ExportError(f"trial {number} of {name!r} was over the{detail} and never trained")
    if record.architecture is None:
        raise ExportError(f"trial {number} of {name!r} has no architecture recorded")
    return t, record


def _member_ok(m: Any) -> bool:
    """A front member as export uses it: a trial number, an accuracy, a FLOPs count."""

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**63

    acc = m.get("accuracy") if isinstance(m, dict) else None
    return (
        isinstance(m, dict)
        and count(m.get("trial"))
        and count(m.get("flops"))
        and isinstance(acc, int | float)
        and not isinstance(acc, bool)
        and math.isfinite(acc)
    )


def _front(run_dir: Path, run) -> list[dict[str, Any]]:
    from attnsearch import safeio
    from attnsearch.rundir import RunDir
    from attnsearch.safeio import show

    path = RunDir(run_dir).pareto_json
    if os.path.lexists(path):
        try:
            members = safeio.json_loads(safeio.read_bytes(path, ExportError))
        except ValueError as e:  # not JSON, nested too deep, a number too long
            why = e if isinstance(e, safeio.NestingError) else "not readable JSON"
            raise ExportError(f"{show(path)} is corrupted ({why})") from None
        if not isinstance(members, list) or not all(_member_ok(m) for m in members):
            raise ExportError(
                f"{show(path)} is corrupted (not a list of front members with an integer "
                "trial, a finite accuracy and integer FLOPs)"
            )
        return members
    from attnsearch.results import open_study, pareto_members

    return pareto_members(run_dir, open_study(run_dir, run.record.study_name))


def choose_trial(
    results_dir: str | Path,
    name: str,
    *,
    trial: int | None = None,
    best: bool = False,
    max_flops: int | None = None,
) -> dict[str, Any]:
    """The trial to export: ``trial`` by number, or the most accurate front member.

    Returns:
        ``{"name", "run_dir", "run", "trial", "architecture", "accuracy", "flops",
        "tune_trial_id"}``.
    """
    from attnsearch.results import open_study

    if (trial is None) == (not best):
        raise ExportError("give exactly one of --trial N or --best")
    if max_flops is not None and not best:
        raise ExportError("--max-flops goes with --best")
    run_dir, run = _run_dir(results_dir, name)
    if best:
        members = _front(run_dir, run)
        if not members:
            raise ExportError(f"search {name!r} has no trained trial on its Pareto front yet")
        if max_flops is not None:
            members = [m for m in members if int(m["flops"]) <= max_flops]
            if not members:
                from attnsearch.budget import format_flops

                raise ExportError(
                    f"no Pareto-front member of {name!r} has at most {format_flops(max_flops)}"
                )
        pick = max(members, key=lambda m: (float(m["accuracy"]), -int(m["flops"])))
        trial = int(pick["trial"])
    study = open_study(run_dir, run.record.study_name)
    t, record = _trial_by_number(study, int(trial), name)
    from attnsearch.results import _accuracy

    return {
        "name": name,
        "run_dir": run_dir,
        "run": run,
        "trial": t.number,
        "architecture": record.architecture,
        "accuracy": _accuracy(t) if t.values else None,
        "flops": record.flops,
        "latency_ms": record.latency_ms,  # a latency-budget search's prediction
        "tune_trial_id": record.tune_trial_id,
    }


def find_checkpoint(run_dir: str | Path, trial: int, tune_trial_id: str | None) -> Path:
    """The trial's last checkpoint (:func:`attnsearch.rundir.find_checkpoint`)."""
    from attnsearch.rundir import NoCheckpointError
    from attnsearch.rundir import find_checkpoint as _find

    try:
        return _find(run_dir, trial, tune_trial_id)
    except NoCheckpointError as e:
        raise ExportError(str(e)) from None


def load_state(path: Path) -> tuple[dict, int | None]:
    from attnsearch.rundir import load_checkpoint

    payload = load_checkpoint(path, ExportError)
    state = {k: v.detach().contiguous().clone() for k, v in payload["model"].items()}
    epoch = payload.get("epoch")
    return state, epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def check_state(state: Mapping[str, Any], reference: Mapping[str, Any], where: Path) -> None:
    if set(state) != set(reference):
        extra = sorted(set(state) - set(reference))
        missing = sorted(set(reference) - set(state))
        what = f"unexpected {extra[0]!r}" if extra else f"missing {missing[0]!r}"
        raise ExportError(f"{where} does not match the trial's network ({what})")
    for k, v in reference.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ExportError(
                f"{where} does not match the trial's network ({k}: {tuple(state[k].shape)} "
                f"vs {tuple(v.shape)})"
            )
