"""The claims: pareto.json members, reference entries, the verdict and the signal (with the
profile cache they read)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from attnsearch import safeio, stats
from attnsearch.errors import InputError
from attnsearch.results._measure import Measured, Measurements, Noise, front_on_means, measurements
from attnsearch.rundir import RunDir

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
        run.write_text(run.profiles_cache, safeio.json_dumps(cache, indent=1))


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
    run_dir: str | Path,
    ms: Measurements,
    profiles: dict | None = None,
    members: list[dict] | None = None,
) -> list[dict[str, Any]]:
    """``summary.json``'s ``references``: the pareto.json keys plus name, paper, fits;
    ``unseparated`` names the front ``members`` the pooled t-test on fresh seeds does not
    separate from it (:func:`unseparated`)."""
    refs = sorted(ms.references.values(), key=lambda r: (r.record.flops, r.record.reference))
    if profiles is None:
        profiles = _profiles(Path(run_dir), {r.record.digest: r.record.architecture for r in refs})
    out = []
    for r in refs:
        entry = {
            "name": r.record.reference,
            "paper": r.record.paper,
            "fits": bool(r.record.fits),
            "trial": r.trial,
            "trials": list(r.trials),
            **_keys(r, profiles[r.record.digest], ms.noise),
        }
        entry["unseparated"] = [
            f"trial {m['trial']}" for m in members or [] if unseparated(m, entry, ms.noise)
        ]
        out.append(entry)
    return out


VERDICT_KEYS = (
    "reference", "reference_accuracy", "reference_seeds", "trial", "selection_seed", "seeds",
    "accuracy", "difference", "beat", "test", "t", "df", "beyond_noise", "text",
)  # fmt: skip  # summary.json's verdict: every key always present (null where not judged)


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
    out: dict[str, Any] = dict.fromkeys(VERDICT_KEYS)  # one schema, whatever the case
    out.update({"test": "pooled t, two-sided, 95 % (the run's seed sd and df)", "df": noise.df})
    if not members or not fitting:
        why = "no trained search trial" if not members else "no reference fits the budget"
        out.update({"seeds": [], "reference_seeds": [], "text": f"verdict: {why}"})
        return out
    best = max(members, key=lambda m: m["accuracy"])
    ref = max(fitting, key=lambda r: r["accuracy"])
    fresh, ref_acc = best["fresh_accuracies"], ref["fresh_accuracies"]
    out.update(
        {
            "reference": ref["name"],
            "reference_accuracy": stats.mean(ref_acc),
            "reference_seeds": list(ref["fresh_seeds"]),
            "trial": best["trial"],
            "selection_seed": best["selection_seed"],
            "seeds": list(best["fresh_seeds"]),
        }
    )
    if not fresh:
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
    separate these candidates on this data. In ``summary.json`` (strict JSON) a ratio that
    is unbounded (seed sd 0, some spread) or undefined (seed sd 0, no spread) is ``null``;
    ``separates`` and the text say which.
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
    if noise.sd:
        ratio, shown = between / noise.sd, f"{between / noise.sd:.2f}"
    elif between:  # repeats agreed to the digit: no measured noise to compare the spread with
        ratio, shown = math.inf, "unbounded (seed sd 0)"
    else:
        ratio, shown = math.nan, "undefined (no spread, seed sd 0)"
    separates = ratio >= SIGNAL_RATIO  # False when undefined: nothing told apart
    out.update({"between_sd": between, "ratio": ratio, "separates": separates})
    text = (
        f"signal: between-architecture sd {100 * between:.2f} points ({len(firsts)} "
        f"architectures, one unselected run each, seed noise removed), seed sd "
        f"{100 * noise.sd:.2f} points (pooled over {noise.architectures} architectures, "
        f"{noise.runs} runs, df {noise.df}): ratio {shown}"
    )
    if not separates:
        text += (
            f" < {SIGNAL_RATIO:g} — this proxy cannot separate these candidates on this "
            "data; the front's order is mostly seed noise"
        )
    out["text"] = text
    return out
