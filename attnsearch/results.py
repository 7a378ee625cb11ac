"""What a search's study yields (DESIGN.md §6): the Optuna storage, trials.csv, pareto.*.

The Optuna storage is the single source of truth; every other file is derived from it
and can be rewritten at any time (``attnsearch pareto NAME`` does, for running searches).
Paths and run settings come from :class:`attnsearch.rundir.RunDir`, which owns the folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnsearch import safeio, stats
from attnsearch.datasets import dataset_caveat
from attnsearch.errors import InputError
from attnsearch.rundir import ResultsError, RunDir, TrialRecord
from attnsearch.safeio import show

ROLE_REFERENCE, ROLE_REPEAT = "reference", "repeat"  # TrialRecord.role of the extra trials

__all__ = [
    "ResultsError",
    "open_study",
    "storage_for",
    "measurements",
    "pareto_members",
    "repeats_needed",
    "verdict",
    "signal",
    "unseparated",
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
                "accuracy": _accuracy(t) if complete and t.values else "",
                "flops": record.flops if record.flops is not None else "",
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


def _role_text(record: TrialRecord) -> str:
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


_PROFILE_KEYS = ("params", "macs_conv_linear", "flops")


def _profiles(run_dir: Path, archs: dict[str, dict]) -> dict[str, dict]:
    """Deploy params and conv+linear MACs per architecture digest, from the folder's cache
    (entries of the wrong shape are measured again) or measured; ``_changed`` in the result
    says whether :func:`_save_profiles` has something to write."""
    from attnsearch.api import profile

    try:
        cache = safeio.json_loads(safeio.read_bytes(RunDir(run_dir).profiles_cache))
    except (InputError, ValueError):  # missing, unreadable, not JSON: a cache, rebuilt
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    cache = {k: v for k, v in cache.items() if _profile_ok(v)}
    changed = False
    for digest, arch in archs.items():
        if digest not in cache:
            p = profile(arch)
            cache[digest] = {k: p[k] for k in _PROFILE_KEYS}
            changed = True
    return {**cache, "_changed": changed}


def _profile_ok(entry: Any) -> bool:
    return isinstance(entry, dict) and all(
        isinstance(entry.get(k), int)
        and not isinstance(entry.get(k), bool)
        and 0 <= entry[k] <= 2**63
        for k in _PROFILE_KEYS
    )


def _save_profiles(run_dir: Path, profiles: dict[str, Any]) -> None:
    if profiles.get("_changed"):
        cache = {k: v for k, v in profiles.items() if k != "_changed"}
        run = RunDir(run_dir)
        run.write_text(run.profiles_cache, json.dumps(cache, indent=1))


@dataclass
class Measured:
    """One architecture's accuracy over its seeds: a search trial with its repeats, or a
    reference over its K trials."""

    trial: int  # the search trial (or the reference's first trial)
    record: TrialRecord
    accuracies: list[float]
    seeds: list[int]
    trials: list[int]  # every stored trial measuring it
    selected: bool = False  # a search trial: its first seed is what put it on the front

    @property
    def mean(self) -> float:
        return stats.mean(self.accuracies)

    @property
    def std(self) -> float:
        return stats.sd(self.accuracies)

    @property
    def fresh(self) -> list[float]:
        """The accuracies a claim about it may rest on: every seed but the one that
        selected it (a search trial's own first seed; a reference was not selected)."""
        return self.accuracies[1:] if self.selected else list(self.accuracies)

    @property
    def fresh_seeds(self) -> list[int]:
        return self.seeds[1:] if self.selected else list(self.seeds)


NOISE_MODEL = (
    "seed sd pooled over every architecture trained with 2 or more seeds (df = sum of "
    "n - 1); intervals and every separated/not-separated statement use it with a two-sided "
    "pooled t-test at 95 %; a front member's selection seed is left out of the means "
    "compared, but kept in the pooled sd (its luck widens the sd: conservative)"
)


@dataclass(frozen=True)
class Noise:
    """The run's one noise model: the seed sd pooled over every architecture measured with
    ≥ 2 seeds, with its degrees of freedom. Every interval and every separation statement
    of a run (table marks, verdict, pareto.json, pareto.png) comes from it."""

    sd: float | None  # pooled within-architecture sample sd; None before any repeat
    df: int  # its degrees of freedom (sum of n - 1)
    architectures: int = 0  # how many architectures it pools
    runs: int = 0  # how many trainings it rests on

    def half_width(self, n: int) -> float | None:
        """Half the 95 % t-interval of a mean over ``n`` seeds (pooled sd)."""
        if self.sd is None or self.df < 1 or n < 1:
            return None
        return stats.t_quantile(self.df) * self.sd / math.sqrt(n)

    def test(self, a: list[float], b: list[float]) -> tuple[float, bool] | None:
        """The pooled t-test of mean(a) vs mean(b): ``(t, separated)``, or ``None``."""
        if not a or not b:
            return None
        return stats.pooled_t(stats.mean(a), len(a), stats.mean(b), len(b), self.sd, self.df)

    def to_json(self) -> dict[str, Any]:
        return {
            "pooled_sd": self.sd,
            "df": self.df,
            "architectures": self.architectures,
            "runs": self.runs,
            "model": NOISE_MODEL,
        }


@dataclass
class Measurements:
    """A study read as measurements: search trials (with their repeats) and references."""

    search: list[Measured]
    references: dict[str, Measured]
    noise: Noise
    planned_repeats: dict[int, int]  # search trial -> repeats stored (any state but failed)
    planned_references: dict[str, int]  # reference name -> trials stored (ditto)


def _is_complete_trained(t, record: TrialRecord) -> bool:
    import optuna

    return t.state == optuna.trial.TrialState.COMPLETE and bool(record.trained) and bool(t.values)


def _planned(t, record: TrialRecord) -> bool:
    """Counts as asked for: done, waiting, running, or failed by itself (not re-asked)."""
    import optuna

    if t.state == optuna.trial.TrialState.FAIL:
        return record.counts_as_failure
    return True


def measurements(study) -> Measurements:
    """Group the study's trials by what they measure (trial numbers are the seeds)."""
    search: dict[int, Measured] = {}
    refs: dict[str, Measured] = {}
    repeats: list[tuple[int, float, int]] = []
    planned_repeats: dict[int, int] = {}
    planned_refs: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        r = TrialRecord.of(t)
        if r.role == ROLE_REPEAT and r.repeat_of is not None and _planned(t, r):
            planned_repeats[r.repeat_of] = planned_repeats.get(r.repeat_of, 0) + 1
        if r.role == ROLE_REFERENCE and r.reference and _planned(t, r):
            planned_refs[r.reference] = planned_refs.get(r.reference, 0) + 1
        if not _is_complete_trained(t, r):
            continue
        acc = _accuracy(t)
        if r.role != ROLE_REPEAT:  # measured here: its architecture and cost are used
            r = _trained_record(t)
        if r.role == ROLE_REPEAT:
            if r.repeat_of is not None:
                repeats.append((r.repeat_of, acc, t.number))
        elif r.role == ROLE_REFERENCE and r.reference:
            m = refs.setdefault(r.reference, Measured(t.number, r, [], [], []))
            m.accuracies.append(acc)
            m.seeds.append(t.number)
            m.trials.append(t.number)
        elif r.role is None and "warm_start_from" not in r.extra:  # another run's: not ours
            search[t.number] = Measured(t.number, r, [acc], [t.number], [t.number], True)
    for of, acc, number in sorted(repeats, key=lambda x: x[2]):
        if of in search:
            search[of].accuracies.append(acc)
            search[of].seeds.append(number)
            search[of].trials.append(number)
    groups = [m.accuracies for m in [*search.values(), *refs.values()] if len(m.accuracies) >= 2]
    pooled, df = stats.pooled_sd(groups)
    noise = Noise(pooled, df, len(groups), sum(len(g) for g in groups))
    return Measurements(list(search.values()), refs, noise, planned_repeats, planned_refs)


def cost_of(record: TrialRecord) -> float:
    """The run's cost of a trial: its predicted latency in a latency run, else its FLOPs."""
    return record.latency_ms if record.latency_ms is not None else record.flops


def front_on_means(search: list[Measured]) -> list[Measured]:
    """The non-dominated search trials on (mean accuracy max, cost min), by cost."""
    ordered = sorted(search, key=lambda m: (cost_of(m.record), -m.mean, m.trial))
    front: list[Measured] = []
    for m in ordered:  # by cost: on the front iff more accurate than everything cheaper
        if not front or m.mean > front[-1].mean:  # a same-cost rival came first: higher mean
            front.append(m)
    return front


def within_noise(ms: Measurements, front: list[Measured]) -> list[Measured]:
    """Trials off the front whose upper 95 % bound reaches the front's accuracy at equal or
    lower cost (pooled seed sd; none before the noise is measured)."""
    on = {m.trial for m in front}
    out = []
    for m in ms.search:
        half = ms.noise.half_width(len(m.accuracies))
        if m.trial in on or half is None:
            continue
        cheaper = [f.mean for f in front if cost_of(f.record) <= cost_of(m.record)]
        if cheaper and m.mean + half >= max(cheaper):
            out.append(m)
    return out


def repeats_needed(study, repeats: int) -> dict[int, int]:
    """Search trial -> repeats still to ask so that the front (on means) and the trials
    within noise of it have ``repeats`` seeds each (counting repeats already stored)."""
    ms = measurements(study)
    front = front_on_means(ms.search)
    need = {}
    for m in [*front, *within_noise(ms, front)]:
        missing = repeats - 1 - ms.planned_repeats.get(m.trial, 0)
        if missing > 0:
            need[m.trial] = missing
    return need


def _interval(m: Measured, noise: Noise) -> list[float] | None:
    """95 % interval of the mean over the fresh seeds (pooled sd); ``None`` without."""
    fresh = m.fresh
    half = noise.half_width(len(fresh))
    if half is None:
        return None
    return [stats.mean(fresh) - half, stats.mean(fresh) + half]


def _keys(m: Measured, prof: dict, noise: Noise) -> dict[str, Any]:
    """The pareto.json keys of one measured architecture.

    ``accuracy`` is the mean of every seed (what the front is computed on); the claims —
    ``interval95``, the ``unseparated`` marks, the verdict — rest on ``fresh_accuracies``,
    the seeds other than ``selection_seed`` (``None`` for a reference)."""
    fresh = m.fresh
    return {
        "architecture": m.record.architecture,
        "accuracy": m.mean,
        "accuracies": list(m.accuracies),
        "accuracy_std": m.std,
        "seeds": list(m.seeds),
        "selection_seed": m.seeds[0] if m.selected else None,
        "fresh_seeds": m.fresh_seeds,
        "fresh_accuracies": fresh,
        "fresh_accuracy": stats.mean(fresh) if fresh else None,
        "interval95": _interval(m, noise),
        "flops": int(m.record.flops),
        **({"latency_ms": float(m.record.latency_ms)} if m.record.latency_ms is not None else {}),
        "params": int(prof["params"]),
        "macs_conv_linear": int(prof["macs_conv_linear"]),
        "digest": m.record.digest,
    }


def unseparated(a: dict[str, Any], b: dict[str, Any], noise: Noise) -> bool:
    """True when the pooled t-test on the fresh seeds is done and does not separate ``a``
    and ``b`` (pareto.json / summary.json entries); False when it separates them or
    cannot be done (a side without fresh seeds, or the noise not measured)."""
    result = noise.test(a["fresh_accuracies"], b["fresh_accuracies"])
    return result is not None and not result[1]


def pareto_members(
    run_dir: str | Path, study, ms: Measurements | None = None, profiles: dict | None = None
) -> list[dict[str, Any]]:
    """The feasible Pareto front on mean accuracy as the pareto.json contract (by FLOPs).

    Search trials only (never references or repeats); each member's ``accuracies`` are its
    own seed and its repeats'. ``unseparated`` names the neighbours (next member, best
    fitting reference) that the pooled t-test on fresh seeds does not separate from it
    (:func:`unseparated`, the test the verdict uses).
    """
    run_dir = Path(run_dir)
    ms = ms or measurements(study)
    front = front_on_means(ms.search)
    refs = list(ms.references.values())
    if profiles is None:
        archs = {m.record.digest: m.record.architecture for m in front + refs}
        profiles = _profiles(run_dir, archs)
    members = []
    for m in front:
        members.append(
            {
                "trial": m.trial,
                **_keys(m, profiles[m.record.digest], ms.noise),
                "tune_trial_id": m.record.tune_trial_id,
            }
        )
    fitting = [r for r in refs if r.record.fits]
    best_ref = max(fitting, key=lambda r: r.mean, default=None)
    ref_entry = None
    if best_ref is not None:
        ref_entry = {"fresh_accuracies": best_ref.fresh}
    for i, m in enumerate(members):
        close = []
        if i + 1 < len(members) and unseparated(m, members[i + 1], ms.noise):
            close.append(f"trial {members[i + 1]['trial']}")
        if ref_entry is not None and unseparated(m, ref_entry, ms.noise):
            close.append(best_ref.record.reference)
        m["unseparated"] = close
    return members


def reference_entries(
    run_dir: str | Path, ms: Measurements, profiles: dict | None = None
) -> list[dict[str, Any]]:
    """``summary.json``'s ``references``: the pareto.json keys plus name, paper, fits."""
    refs = sorted(ms.references.values(), key=lambda r: (r.record.flops, r.record.reference))
    if profiles is None:
        profiles = _profiles(Path(run_dir), {r.record.digest: r.record.architecture for r in refs})
    return [
        {
            "name": r.record.reference,
            "paper": r.record.paper,
            "fits": bool(r.record.fits),
            "trial": r.trial,
            "trials": list(r.trials),
            **_keys(r, profiles[r.record.digest], ms.noise),
        }
        for r in refs
    ]


def verdict(members: list[dict], references: list[dict], noise: Noise) -> dict[str, Any]:
    """Did the search beat the best reference that fits, by how much, beyond noise?

    The most accurate front member (on the mean of all its seeds: how it was chosen) is
    compared on its fresh seeds — its selection seed left out, so the winner's luck is not
    in the comparison — with the most accurate fitting reference on all its seeds, by the
    run's one test (:meth:`Noise.test`: pooled seed sd and df, two-sided, 95 %), the same
    that marks the table's unseparated pairs. Picking the best of several references by
    their means favours the reference a little: the direction of doubt is the search's.
    """
    fitting = [r for r in references if r["fits"]]
    if not members or not fitting:
        why = "no trained search trial" if not members else "no reference fits the budget"
        return {"reference": None, "trial": None, "beat": None, "text": f"verdict: {why}"}
    best = max(members, key=lambda m: m["accuracy"])
    ref = max(fitting, key=lambda r: r["accuracy"])
    fresh, ref_acc = best["fresh_accuracies"], ref["fresh_accuracies"]
    out: dict[str, Any] = {
        "reference": ref["name"],
        "reference_accuracy": stats.mean(ref_acc),
        "reference_seeds": list(ref["fresh_seeds"]),
        "trial": best["trial"],
        "selection_seed": best["selection_seed"],
        "seeds": list(best["fresh_seeds"]),
        "test": "pooled t, two-sided, 95 % (the run's seed sd and df)",
        "t": None,
        "df": noise.df,
        "beyond_noise": None,
    }
    if not fresh:
        out.update({"accuracy": None, "difference": None, "beat": None})
        out["text"] = (
            f"verdict: not judged: trial {best['trial']} has no seed besides the one that "
            f"selected it (run with --repeats 2 or more) — its {best['accuracy']:.4f} vs "
            f"{ref['name']}'s {out['reference_accuracy']:.4f} is a selected, biased figure"
        )
        return out
    diff = stats.mean(fresh) - out["reference_accuracy"]
    out.update({"accuracy": stats.mean(fresh), "difference": diff, "beat": diff > 0})
    result = noise.test(fresh, ref_acc)
    pair = (
        f"trial {best['trial']} ({out['accuracy']:.4f}, {len(fresh)} fresh seed"
        f"{'s' if len(fresh) > 1 else ''}) vs {ref['name']} ({out['reference_accuracy']:.4f}, "
        f"{len(ref_acc)} seeds), {100 * diff:+.2f} points"
    )
    if result is None:
        head = "the search beat" if diff > 0 else "the search did not beat"
        tail = "noise not measured (no architecture has 2 seeds)"
    else:
        t, separated = result
        out.update({"t": t if math.isfinite(t) else None, "beyond_noise": separated})
        test = f"pooled t = {t:.2f}, df {noise.df}, 95 %"
        if not separated:
            head, tail = "the search's best is within noise of", f"not separated ({test})"
        else:
            head = "the search beat" if diff > 0 else "the search did not beat"
            tail = f"beyond noise ({test})"
    out["text"] = f"verdict: {head} the best reference that fits: {pair}, {tail}"
    return out


SIGNAL_RATIO = 2.0  # between-architecture sd below 2× the seed sd: the proxy cannot rank


def signal(ms: Measurements) -> dict[str, Any]:
    """The run's own signal: how far apart the architectures it trained are, against its
    seed noise.

    ``between_sd``: the sd of one accuracy per trained architecture (each search trial's
    own seed, each reference's first seed — none of them selected), with the seed noise
    removed (:func:`attnsearch.stats.between_sd`); ``seed_sd``: the run's pooled seed sd
    (:class:`Noise`). A ratio below :data:`SIGNAL_RATIO` says that this proxy cannot
    separate these candidates on this data.
    """
    firsts = [m.accuracies[0] for m in [*ms.search, *ms.references.values()]]
    noise = ms.noise
    out: dict[str, Any] = {
        "architectures": len(firsts),
        "seed_sd": noise.sd,
        "seed_df": noise.df,
        "seed_architectures": noise.architectures,
        "seed_runs": noise.runs,
        "between_sd": None,
        "between_sd_raw": stats.sd(firsts) if len(firsts) >= 2 else None,
        "ratio": None,
        "separates": None,
    }
    if len(firsts) < 3 or noise.sd is None:
        why = (
            f"only {len(firsts)} architecture{'s' if len(firsts) != 1 else ''} trained"
            if len(firsts) < 3
            else "no architecture trained with 2 seeds (references or --repeats 2)"
        )
        out["text"] = f"signal: not measured ({why})"
        return out
    between = stats.between_sd(firsts, noise.sd)
    ratio = between / noise.sd if noise.sd else math.inf
    out.update({"between_sd": between, "ratio": ratio, "separates": ratio >= SIGNAL_RATIO})
    text = (
        f"signal: between-architecture sd {100 * between:.2f} points ({len(firsts)} "
        f"architectures, one unselected run each, seed noise removed), seed sd "
        f"{100 * noise.sd:.2f} points (pooled over {noise.architectures} architectures, "
        f"{noise.runs} runs, df {noise.df}): ratio {ratio:.2f}"
    )
    if ratio < SIGNAL_RATIO:
        text += (
            f" < {SIGNAL_RATIO:g} — this proxy cannot separate these candidates on this "
            "data; the front's order is mostly seed noise"
        )
    out["text"] = text
    return out


def write_results(run: RunDir, study) -> dict[str, Any]:
    """Rewrite trials.csv, pareto.*, summary.json from the storage; return the summary.

    Everything is read and checked first, and every target checked (a regular file or
    absent), before the first file is replaced: a corrupted storage leaves the files as
    they were. ``counts`` counts search trials by status; ``references`` and ``repeats``
    count the extra trials that trained.
    """
    run_dir = run.path
    rows = trial_rows(study)
    ms = measurements(study)
    front = front_on_means(ms.search)
    refs = list(ms.references.values())
    profiles = _profiles(run_dir, {m.record.digest: m.record.architecture for m in front + refs})
    members = pareto_members(run_dir, study, ms, profiles)
    references = reference_entries(run_dir, ms, profiles)
    judged = verdict(members, references, ms.noise)
    for path in run.derived_files:
        safeio.check_target(path, ResultsError)
    _save_profiles(run_dir, profiles)
    _write_csv(run, run.trials_csv, rows)
    run.write_text(run.pareto_json, json.dumps(members, indent=2) + "\n")
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
                "params": m["params"],
                "macs_conv_linear": m["macs_conv_linear"],
                "architecture": _summary(m["architecture"]),
            }
            for m in members
        ],
    )
    plot_pareto(run.pareto_png, rows, members, run.settings.budget, references)
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
    }
    run.write_text(run.summary_json, json.dumps(summary, indent=2) + "\n")
    return {**summary, "run_dir": str(run_dir)}


def _write_csv(run: RunDir, path: Path, rows: list[dict[str, Any]]) -> None:
    with run.atomic_open(path, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def plot_pareto(
    path: Path,
    rows: list[dict],
    members: list[dict],
    budget: int,
    references: list[dict] | None = None,
) -> None:
    """Accuracy vs GFLOPs: trained search trials, the front on means with 95 % intervals
    (hollow: not separated from a neighbour), references, infeasible candidates, budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    done = [r for r in rows if r["status"] == "complete" and r["role"] == "search"]
    infeasible = [r for r in rows if r["status"] == "infeasible" and r["flops"] != ""]
    failed = [r for r in rows if r["status"] == "fail" and r["flops"] != ""]
    if done:
        ax.scatter(
            [r["flops"] / 1e9 for r in done],
            [r["accuracy"] for r in done],
            s=18,
            c="tab:blue",
            alpha=0.6,
            label=f"trained, first seed ({len(done)})",
        )
    if members:
        xs = [m["flops"] / 1e9 for m in members]
        ys = [m["accuracy"] for m in members]
        ax.plot(xs, ys, "-", c="tab:red", label=f"Pareto front, mean of seeds ({len(members)})")
        ax.plot([], [], "o", c="tab:red", label="fresh seeds' mean ± 95 % (hollow: not separated)")
        for m, x in zip(members, xs, strict=True):
            if m.get("fresh_accuracy") is None:
                continue  # only its selection seed: nothing to claim
            y, ci = m["fresh_accuracy"], m.get("interval95")
            err = None if ci is None else [[y - ci[0]], [ci[1] - y]]
            ax.errorbar(
                [x],
                [y],
                yerr=err,
                fmt="o",
                c="tab:red",
                mfc="white" if m.get("unseparated") else "tab:red",
                ms=6,
                capsize=3,
            )
    for r in references or []:
        ci = r.get("interval95")
        y = r["accuracy"]
        ax.errorbar(
            [r["flops"] / 1e9],
            [y],
            yerr=None if ci is None else [[y - ci[0]], [ci[1] - y]],
            fmt="D" if r["fits"] else "d",
            c="tab:purple" if r["fits"] else "tab:grey",
            ms=6,
            capsize=3,
        )
        ax.annotate(r["name"], (r["flops"] / 1e9, y), fontsize=7, xytext=(4, 4),
                    textcoords="offset points")  # fmt: skip
    if references:
        ax.plot([], [], "D", c="tab:purple", label="reference (papers' networks)")
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
    ax.legend(fontsize=8, loc="best")  # references sit low on a short proxy
    fig.tight_layout()
    try:
        with safeio.atomic_open(path, "wb", ResultsError) as f:  # matplotlib writes our file
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
