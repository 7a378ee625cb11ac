"""The report: candidate scores, noise and ranking figures, the stage-A verdict, JSON."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from attnsearch import stats
from attnsearch.fidelity._panel import BOOTSTRAP, STAGES, TOP_K


# ---- scores --------------------------------------------------------------------------------
def _last_epochs(epochs: int) -> int:
    return min(epochs, max(2, epochs // 2))


SCORES: dict[str, Callable[[dict], float]] = {
    # each maps one proxy run (history, train_losses, val_losses) to "higher is better"
    "final_accuracy": lambda r: r["history"][-1],
    "last_epochs_accuracy": lambda r: stats.mean(r["history"][-_last_epochs(len(r["history"])) :]),
    "neg_final_val_loss": lambda r: -r["val_losses"][-1],
    "neg_sum_train_loss": lambda r: -math.fsum(r["train_losses"]),
}


# ---- the report ------------------------------------------------------------------------
def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if "failed" not in r]


def summarize(report: dict[str, Any], *, bootstrap_seed: int = 0) -> dict[str, Any]:
    """The fidelity figures of a report (see the module docstring)."""
    panel = report["panel"]
    usable = [m for m in panel if len(_ok(m["proxy"])) >= 2 and _ok(m["reference"])]
    failed_runs = sum(len(m["proxy"]) + len(m["reference"]) for m in panel) - sum(
        len(_ok(m["proxy"])) + len(_ok(m["reference"])) for m in panel
    )
    for m in panel:
        p, r = _ok(m["proxy"]), _ok(m["reference"])
        m["proxy_mean"] = stats.mean([x["accuracy"] for x in p]) if p else None
        m["proxy_sd"] = stats.sd([x["accuracy"] for x in p]) if p else None
        m["reference_mean"] = stats.mean([x["accuracy"] for x in r]) if r else None
        m["reference_sd"] = stats.sd([x["accuracy"] for x in r]) if r else None
        m["scores"] = {k: stats.mean([f(x) for x in p]) if p else None for k, f in SCORES.items()}
    out: dict[str, Any] = {"architectures": len(usable), "failed_runs": failed_runs}
    # the noise figures need the proxy runs only (at least 2 seeds on at least 3 members)
    noisy = [m for m in panel if len(_ok(m["proxy"])) >= 2]
    if len(noisy) < 3:
        out["error"] = "fewer than 3 architectures have 2 or more proxy runs"
        return out
    k = min(len(_ok(m["proxy"])) for m in noisy)
    within = _pooled_sd(noisy, "proxy")  # every member here has 2 or more proxy runs
    between = stats.sd([m["proxy_mean"] for m in noisy])
    proxy_runs = [r for m in panel for r in _ok(m["proxy"])]
    out.update(
        {
            "within_sd": within,
            "between_sd": between,
            "between_sd_corrected": stats.between_sd(
                [m["proxy_mean"] for m in noisy], within, runs=k
            ),
            "between_over_within": between / within if within else math.inf,
            "noise_architectures": len(noisy),
            "seconds_per_proxy_eval": stats.mean([r["seconds"] for r in proxy_runs]),
        }
    )
    st = report.get("settings", {})
    planned = {"proxy": st.get("proxy_seeds"), "reference": st.get("reference_seeds")}
    factor = st.get("reference_factor")
    out["stage_a"] = stage_a(
        panel, {k: v for k, v in planned.items() if v} or None, reference_factor=factor
    )
    if len(usable) < 3:
        out["ranking_missing"] = (
            "fewer than 3 architectures have both proxy and reference runs: no ranking "
            "figures (train them with --stage reference and the same --journal)"
        )
        return out
    ref = [m["reference_mean"] for m in usable]
    proxy = [m["proxy_mean"] for m in usable]
    ref_within = _pooled_sd(usable, "reference")

    def rank_stats(x: list[float]) -> dict[str, Any]:
        return {
            "kendall_tau": stats.kendall_tau(x, ref),
            "kendall_tau_ci95": list(
                stats.bootstrap_ci(
                    x, ref, stats.kendall_tau, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            "spearman_rho": stats.spearman_rho(x, ref),
            "spearman_rho_ci95": list(
                stats.bootstrap_ci(
                    x, ref, stats.spearman_rho, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            f"top{TOP_K}_overlap": stats.top_k_overlap(x, ref, TOP_K),
        }

    ref_runs = [r for m in panel for r in _ok(m["reference"])]
    scores = {name: rank_stats([m["scores"][name] for m in usable]) for name in SCORES}
    best = max(scores, key=lambda s: (_nan_low(scores[s]["kendall_tau"]), s))
    out.update(
        {
            "reference_within_sd": ref_within,
            "reference_between_sd": stats.sd(ref),
            "reference_seed_tau": _seed_tau(usable, "reference"),
            "proxy_seed_tau": _seed_tau(usable, "proxy"),
            "proxy_accuracy_range": [min(proxy), max(proxy)],
            "reference_accuracy_range": [min(ref), max(ref)],
            **rank_stats(proxy),
            "kendall_tau_params": stats.kendall_tau([float(m["params"]) for m in usable], ref),
            "kendall_tau_flops": stats.kendall_tau([float(m["flops"]) for m in usable], ref),
            "seconds_per_reference_eval": stats.mean([r["seconds"] for r in ref_runs]),
            "scores": scores,
            "best_score": best,
            "by_kind": _by_kind(usable, bootstrap_seed),
        }
    )
    return out


STAGE_A_RATIO = 2.0  # proxy: between-architecture sd at least this many seed sds
STAGE_A_SATURATED = 0.97  # reference: a best network above this has no room to rank
STAGE_A_MIN_FACTOR = 10  # the reference has at least this many times the proxy's steps


def stage_a(
    panel: list[dict],
    planned: dict[str, int] | None = None,
    *,
    reference_factor: float | None = None,
) -> dict[str, Any] | None:
    """The go/no-go of a default task and proxy, on a panel holding the plain network.

    Passes when all four hold: (1) under the proxy the between-architecture sd (of the
    members' proxy means) is at least :data:`STAGE_A_RATIO` × the pooled seed sd; (2) the
    reference is not saturated (its best mean below :data:`STAGE_A_SATURATED`); (3) the
    reference separates at least one attention network from plain beyond noise; (4) the
    proxy orders every pair that the reference separates the same way. "Separates" is the
    pooled two-sample t-test at 95 % (:func:`attnsearch.stats.pooled_t`) with the
    schedule's seed sd pooled over the panel — the test a run's verdict uses. ``None``
    without a plain member. Each figure says how many runs it rests on.

    ``planned``: the runs per member each schedule is to have (``{"proxy": 3, "reference":
    2}``). While a member has fewer, the checks of that schedule are not decided: their
    ``pass`` is ``None`` and ``so_far`` holds what the runs measured so far say, and the
    outcome waits (a mean over fewer seeds than planned can still move either way; a failed
    run is trained again, never skipped). ``None``: whatever runs there are.

    ``reference_factor``: the reference's steps over the proxy's. Below
    :data:`STAGE_A_MIN_FACTOR` the reference is too short to stand for longer training: its
    checks are not decided (``so_far`` holds what they say) and ``short_reference`` says
    why; a failing proxy check still fails the stage, which needs no reference.
    """
    plain = next((m for m in panel if m["name"] == "uniform-none"), None)
    if plain is None:
        return None
    runs = {sch: {m["name"]: [r["accuracy"] for r in _ok(m[sch])] for m in panel} for sch in STAGES}
    out: dict[str, Any] = {
        "checks": {},
        "runs": {sch: sum(map(len, runs[sch].values())) for sch in STAGES},
    }
    p_sd, p_df = stats.pooled_sd(list(runs["proxy"].values()))
    p_means = {k: stats.mean(v) for k, v in runs["proxy"].items() if v}
    checks = out["checks"]
    if p_sd and len(p_means) >= 3:
        ratio = stats.sd(list(p_means.values())) / p_sd
        checks["proxy_between_over_within"] = {"value": ratio, "pass": ratio >= STAGE_A_RATIO}
    else:
        checks["proxy_between_over_within"] = {"value": None, "pass": None}
    r_sd, r_df = stats.pooled_sd(list(runs["reference"].values()))
    r_means = {k: stats.mean(v) for k, v in runs["reference"].items() if v}
    if not r_means:
        checks["reference_not_saturated"] = {"value": None, "pass": None}
        checks["reference_separates_attention"] = {"value": None, "pass": None}
        checks["proxy_agrees_on_separated_pairs"] = {"value": None, "pass": None}
        _hold_incomplete(out, runs, planned)
        out["pass"] = None if checks["proxy_between_over_within"]["pass"] is not False else False
        out["missing"] = "no reference runs yet (--stage reference with the same --journal)"
        return out
    best = max(r_means.values())
    checks["reference_not_saturated"] = {"value": best, "pass": best < STAGE_A_SATURATED}

    def separated(a: str, b: str) -> bool | None:
        ra, rb = runs["reference"][a], runs["reference"][b]
        res = stats.pooled_t(
            stats.mean(ra) if ra else 0.0, len(ra), stats.mean(rb) if rb else 0.0, len(rb),
            r_sd, r_df,
        )  # fmt: skip
        return None if res is None else res[1]

    names = [m["name"] for m in panel if runs["reference"][m["name"]]]
    vs_plain = [n for n in names if n != "uniform-none" and separated(n, "uniform-none")]
    untestable = r_sd is None or not runs["reference"]["uniform-none"]
    checks["reference_separates_attention"] = {
        "value": vs_plain,
        "pass": None if untestable else bool(vs_plain),
    }
    pairs, disagree = [], []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if separated(a, b) and a in p_means and b in p_means:
                pairs.append([a, b])
                if (r_means[a] > r_means[b]) != (p_means[a] > p_means[b]):
                    disagree.append([a, b])
    checks["proxy_agrees_on_separated_pairs"] = {
        "value": {"separated_pairs": pairs, "disagreeing": disagree},
        "pass": None if untestable else not disagree,
    }
    out["proxy_seed_sd"], out["proxy_df"] = p_sd, p_df
    out["reference_seed_sd"], out["reference_df"] = r_sd, r_df
    _hold_incomplete(out, runs, planned)
    _hold_short(out, reference_factor)
    verdicts = [c["pass"] for c in checks.values()]
    out["pass"] = False if False in verdicts else (None if None in verdicts else True)
    return out


_SCHEDULE_OF = {  # which runs each check rests on
    "proxy_between_over_within": "proxy",
    "reference_not_saturated": "reference",
    "reference_separates_attention": "reference",
    "proxy_agrees_on_separated_pairs": "reference",  # (and the proxy: complete before it)
}


def _hold_short(out: dict, reference_factor: float | None) -> None:
    """Leave the reference's checks undecided under a reference shorter than
    :data:`STAGE_A_MIN_FACTOR` × the proxy (stage_a)."""
    if reference_factor is None or reference_factor >= STAGE_A_MIN_FACTOR:
        return
    for key, schedule in _SCHEDULE_OF.items():
        check = out["checks"][key]
        if schedule == "reference" and check["pass"] is not None:
            check["so_far"], check["pass"] = check["pass"], None
    out["short_reference"] = (
        f"the reference has {reference_factor:g}x the proxy's steps; stage A decides on a "
        f"reference of {STAGE_A_MIN_FACTOR}x or more (--reference-factor {STAGE_A_MIN_FACTOR})"
    )


def _hold_incomplete(out: dict, runs: dict, planned: dict[str, int] | None) -> None:
    """Leave undecided every check of a schedule with fewer runs than planned (stage_a)."""
    if not planned:
        return
    short = {
        sch: sum(max(0, planned[sch] - len(v)) for v in runs[sch].values())
        for sch in STAGES
        if sch in planned
    }
    if short.get("proxy"):  # every check compares with the proxy means
        held = set(_SCHEDULE_OF)
    else:
        held = {k for k, sch in _SCHEDULE_OF.items() if short.get(sch)}
    for key in held:
        check = out["checks"][key]
        check["so_far"], check["pass"] = check["pass"], None
    missing = [
        f"{planned[sch] * len(runs[sch]) - n} of {planned[sch] * len(runs[sch])} {sch} runs"
        for sch, n in short.items()
        if n
    ]
    if missing:
        out["missing"] = (
            f"{' and '.join(missing)} measured: the checks that rest on the rest wait for "
            "them (the same command with the same --journal trains only those)"
        )


def _seed_tau(members: list[dict], schedule: str) -> float | None:
    """Mean Kendall τ between the rankings that two seeds of ``schedule`` give the members,
    over every pair of seeds (each pair on the members that have both runs, at least 3): how
    well that schedule agrees with itself. For the reference it is a rough guide to what a
    proxy's τ against it can show (that τ is taken against the mean of the reference seeds,
    a little steadier than one seed). ``None`` without such a pair; NaN when every pair's
    τ is undefined (all accuracies tied)."""
    runs = [{r["seed"]: r["accuracy"] for r in _ok(m[schedule])} for m in members]
    seeds = sorted({s for r in runs for s in r})
    taus = []
    for i, a in enumerate(seeds):
        for b in seeds[i + 1 :]:
            both = [r for r in runs if a in r and b in r]
            if len(both) >= 3:
                taus.append(stats.kendall_tau([r[a] for r in both], [r[b] for r in both]))
    if not taus:
        return None
    finite = [t for t in taus if not math.isnan(t)]
    return stats.mean(finite) if finite else math.nan


def _pooled_sd(members: list[dict], schedule: str) -> float | None:
    """Seed sd pooled (df-weighted, :func:`attnsearch.stats.pooled_sd`) over the members
    with at least 2 runs of ``schedule`` (``None``: no such member)."""
    groups = [[r["accuracy"] for r in _ok(m[schedule])] for m in members]
    return stats.pooled_sd(groups)[0]


def _by_kind(usable: list[dict], bootstrap_seed: int) -> dict[str, dict[str, Any]]:
    """Noise and ranking figures within each kind of member (``uniform``, ``random``): the
    random members are what a search compares, the uniform ones can dominate the spread.
    Over the members with both proxy and reference runs (the panel-wide noise figures use
    every member with 2 proxy runs, so the two can differ by the members left out)."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({m["kind"] for m in usable}):
        ms = [m for m in usable if m["kind"] == kind]
        if len(ms) < 3:
            continue
        proxy = [m["proxy_mean"] for m in ms]
        ref = [m["reference_mean"] for m in ms]
        within = _pooled_sd(ms, "proxy")
        out[kind] = {
            "architectures": len(ms),
            "within_sd": within,
            "between_sd": stats.sd(proxy),
            "between_over_within": stats.sd(proxy) / within if within else math.inf,
            "reference_within_sd": _pooled_sd(ms, "reference"),
            "reference_between_sd": stats.sd(ref),
            "kendall_tau": stats.kendall_tau(proxy, ref),
            "kendall_tau_ci95": list(
                stats.bootstrap_ci(
                    proxy, ref, stats.kendall_tau, resamples=BOOTSTRAP, seed=bootstrap_seed
                )
            ),
            "kendall_tau_flops": stats.kendall_tau([float(m["flops"]) for m in ms], ref),
            "reference_seed_tau": _seed_tau(ms, "reference"),
        }
    return out


def _nan_low(v: float) -> float:
    return -math.inf if math.isnan(v) else v
