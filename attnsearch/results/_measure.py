"""A study read as measurements: each architecture over its seeds, the run's noise, the front."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from attnsearch import stats
from attnsearch.results._storage import ROLE_REFERENCE, ROLE_REPEAT, _accuracy, _trained_record
from attnsearch.rundir import TrialRecord


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
        if r.copied:  # another run's measurement: not this run's noise, front or references
            continue
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
        elif r.role is None:
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
