"""Small statistics for seed noise and rank agreement, in plain Python (no scipy).

* :func:`mean`, :func:`sd` (sample, n - 1), :func:`t_quantile`, :func:`t_interval` — the
  95 % interval of a mean over a few seeds.
* :func:`pooled_sd` — the within-group (seed) sd pooled over groups, with its degrees of
  freedom; :func:`pooled_t` — the two-sample t-test on that pooled sd (the one test every
  "separated / not separated" statement of a run comes from); :func:`between_sd` — the
  spread between groups with the seed noise taken out.
* :func:`kendall_tau` (τ-b, ties handled as in Kendall 1945 / ``scipy.stats.kendalltau``),
  :func:`spearman_rho` (Pearson correlation of average ranks), :func:`top_k_overlap`.
* :func:`bootstrap_ci` — a seeded percentile bootstrap over paired observations.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

__all__ = [
    "mean",
    "sd",
    "t_quantile",
    "t_interval",
    "pooled_sd",
    "pooled_t",
    "between_sd",
    "ranks",
    "kendall_tau",
    "spearman_rho",
    "top_k_overlap",
    "bootstrap_ci",
]

# Two-sided 95 % Student-t quantiles t(0.975, df) for df = 1..30 (standard tables, 6 d.p.).
_T975 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
    2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
    2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
)  # fmt: skip
_Z975 = 1.959963984540054  # standard normal 0.975 quantile


def mean(xs: Sequence[float]) -> float:
    """Arithmetic mean; raises ``ValueError`` on an empty sequence."""
    if not xs:
        raise ValueError("mean of no values")
    return math.fsum(xs) / len(xs)


def sd(xs: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0.0 for a single value."""
    if len(xs) < 2:
        if not xs:
            raise ValueError("sd of no values")
        return 0.0
    m = mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (95 % two-sided).

    Exact table values for df ≤ 30; above, the Cornish-Fisher expansion around the normal
    quantile (error < 1e-6 for df > 30).
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_interval(xs: Sequence[float]) -> tuple[float, float]:
    """95 % t-interval of the mean of ``xs``; needs at least two values."""
    if len(xs) < 2:
        raise ValueError("an interval needs at least two values")
    m = mean(xs)
    half = t_quantile(len(xs) - 1) * sd(xs) / math.sqrt(len(xs))
    return m - half, m + half


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float | None, int]:
    """The within-group sample sd pooled over ``groups``, and its degrees of freedom.

    ``sqrt(Σ (n_i - 1) s_i² / Σ (n_i - 1))`` over the groups with at least two values (a
    single value says nothing about noise); ``(None, 0)`` when no group has two.
    """
    df = sum(len(g) - 1 for g in groups if len(g) >= 2)
    if df == 0:
        return None, 0
    ss = math.fsum((len(g) - 1) * sd(g) ** 2 for g in groups if len(g) >= 2)
    return math.sqrt(ss / df), df


def pooled_t(
    mean_a: float, n_a: int, mean_b: float, n_b: int, sd_pooled: float | None, df: int
) -> tuple[float, bool] | None:
    """Two-sided two-sample t-test at 95 % with a pooled seed sd: ``(t, separated)``.

    ``t = (mean_a - mean_b) / (sd_pooled · sqrt(1/n_a + 1/n_b))`` against Student's t with
    the pooled ``df``. ``None`` when it cannot be done: no pooled sd (``df`` < 1) or a side
    with no value. A zero pooled sd separates any two different means.
    """
    if sd_pooled is None or df < 1 or n_a < 1 or n_b < 1:
        return None
    diff = mean_a - mean_b
    se = sd_pooled * math.sqrt(1 / n_a + 1 / n_b)
    if se == 0:
        return (math.copysign(math.inf, diff) if diff else 0.0), diff != 0
    t = diff / se
    return t, abs(t) > t_quantile(df)


def between_sd(values: Sequence[float], within: float, runs: int = 1) -> float:
    """The sd between groups from one value per group, seed noise removed.

    Each value is a group's level plus the mean seed noise of ``runs`` runs, so its variance
    is ``between² + within²/runs``; this returns ``sqrt(max(0, sd(values)² - within²/runs))``.
    Needs at least two values.
    """
    if len(values) < 2:
        raise ValueError("a spread needs at least two values")
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    return math.sqrt(max(0.0, sd(values) ** 2 - within**2 / runs))


def ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = avg
        i = j + 1
    return out


def _check_pair(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"paired sequences differ in length ({len(x)} vs {len(y)})")
    if len(x) < 2:
        raise ValueError("rank correlation needs at least two pairs")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b; NaN when either sequence is constant."""
    _check_pair(x, y)
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            if dx == 0 and dy == 0:
                continue  # tied in both: counts in neither denominator term
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx == dy:
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denom if denom else math.nan


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: the Pearson correlation of average ranks; NaN for a constant input."""
    _check_pair(x, y)
    rx, ry = ranks(x), ranks(y)
    mx, my = mean(rx), mean(ry)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = math.fsum((a - mx) ** 2 for a in rx)
    syy = math.fsum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


def top_k_overlap(x: Sequence[float], y: Sequence[float], k: int) -> int:
    """How many of the ``k`` highest under ``x`` are also among the ``k`` highest under ``y``.

    Ties at the cut are broken by index, the same way for both.
    """
    _check_pair(x, y)
    k = min(k, len(x))
    top_x = sorted(range(len(x)), key=lambda i: (-x[i], i))[:k]
    top_y = sorted(range(len(y)), key=lambda i: (-y[i], i))[:k]
    return len(set(top_x) & set(top_y))


def bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    statistic: Callable[[Sequence[float], Sequence[float]], float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)`` over resampled pairs.

    Resamples where the statistic is undefined (NaN: e.g. every pair drawn is the same)
    are skipped. Deterministic for a given ``seed``.
    """
    _check_pair(x, y)
    rng = random.Random(seed)
    n = len(x)
    values = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        v = statistic([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    values.sort()
    alpha = (1 - level) / 2
    return _quantile(values, alpha), _quantile(values, 1 - alpha)


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default rule)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
