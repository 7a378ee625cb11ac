"""attnsearch.stats against values worked out by hand (or from standard tables)."""

from __future__ import annotations

import math

import pytest

from attnsearch import stats


def test_mean_sd_interval_by_hand():
    xs = [1.0, 2.0, 3.0]
    assert stats.mean(xs) == 2.0
    assert stats.sd(xs) == 1.0  # sqrt(((-1)^2 + 0 + 1^2) / 2)
    lo, hi = stats.t_interval(xs)
    half = 4.302653 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert lo == pytest.approx(2 - half, abs=1e-6) and hi == pytest.approx(2 + half, abs=1e-6)
    assert stats.sd([5.0]) == 0.0
    with pytest.raises(ValueError):
        stats.t_interval([1.0])
    with pytest.raises(ValueError):
        stats.mean([])


@pytest.mark.parametrize(
    ("df", "expected"),
    [(1, 12.706205), (2, 4.302653), (9, 2.262157), (30, 2.042272), (31, 2.039513),
     (40, 2.021075), (60, 2.000298), (120, 1.979930), (10_000, 1.960201)],
)  # fmt: skip
def test_t_quantile_matches_tables(df, expected):
    assert stats.t_quantile(df) == pytest.approx(expected, abs=2e-6)


def test_kendall_tau_b_by_hand():
    # x = 1..5, y = 3,4,1,2,5: of the 10 pairs, 6 concordant and 4 discordant -> 0.2
    assert stats.kendall_tau([1, 2, 3, 4, 5], [3, 4, 1, 2, 5]) == pytest.approx(0.2)
    # ties: C = 4, D = 0, one pair tied only in x, one only in y -> 4 / sqrt(5 * 5)
    assert stats.kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert stats.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(stats.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_spearman_by_hand():
    # d = -1, 1, -1, 1, 0 -> 1 - 6 * 4 / (5 * 24) = 0.8
    assert stats.spearman_rho([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert stats.ranks([10, 20, 20, 30]) == [1.0, 2.5, 2.5, 4.0]
    # with ties: ranks y = 1, 2.5, 2.5, 4 against 1..4: Pearson = 4.5 / sqrt(5 * 4.5)
    assert stats.spearman_rho([1, 2, 3, 4], [1, 5, 5, 9]) == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    with pytest.raises(ValueError):
        stats.spearman_rho([1, 2], [1, 2, 3])


def test_top_k_overlap():
    assert stats.top_k_overlap([5, 4, 3, 2, 1], [1, 4, 5, 3, 2], 2) == 1  # {0,1} vs {2,1}
    assert stats.top_k_overlap([1, 2, 3], [1, 2, 3], 5) == 3


def test_bootstrap_ci_is_seeded_and_brackets():
    x = list(range(20))
    y = [v + (3 if v % 2 else -3) for v in x]
    a = stats.bootstrap_ci(x, y, stats.kendall_tau, resamples=300, seed=1)
    b = stats.bootstrap_ci(x, y, stats.kendall_tau, resamples=300, seed=1)
    c = stats.bootstrap_ci(x, y, stats.kendall_tau, resamples=300, seed=2)
    assert a == b and a != c
    tau = stats.kendall_tau(x, y)
    assert a[0] < tau < a[1] <= 1.0
    # a perfect ranking resamples to 1 every time (ties-in-both pairs are ignored)
    assert stats.bootstrap_ci(x, x, stats.kendall_tau, resamples=50) == (1.0, 1.0)


def test_pooled_sd_weights_by_degrees_of_freedom():
    groups = [[1.0, 3.0], [2.0, 4.0, 6.0], [5.0]]  # the single value has no say
    # by hand: (1 * 2 + 2 * 4) / (1 + 2) = 10 / 3
    sd_, df = stats.pooled_sd(groups)
    assert df == 3 and sd_ == pytest.approx(math.sqrt(10 / 3))
    assert stats.pooled_sd([[1.0], [2.0]]) == (None, 0)


def test_pooled_t_by_hand():
    t, separated = stats.pooled_t(0.80, 2, 0.70, 3, 0.02, 6)
    assert t == pytest.approx(0.10 / (0.02 * math.sqrt(1 / 2 + 1 / 3)))
    assert separated is (t > 2.446912)
    t, separated = stats.pooled_t(0.80, 2, 0.78, 2, 0.02, 6)
    assert t == pytest.approx(1.0) and separated is False
    assert stats.pooled_t(0.8, 2, 0.7, 2, None, 0) is None
    assert stats.pooled_t(0.8, 0, 0.7, 2, 0.02, 3) is None
    assert stats.pooled_t(0.8, 2, 0.7, 2, 0.0, 3)[1] is True
    assert stats.pooled_t(0.8, 2, 0.8, 2, 0.0, 3) == (0.0, False)


def test_between_sd_removes_the_seed_noise():
    values = [0.1, 0.3, 0.5]  # sample variance 0.04
    assert stats.between_sd(values, 0.1) == pytest.approx(math.sqrt(0.04 - 0.01))
    assert stats.between_sd(values, 0.5) == 0.0
    # means of 4 runs carry a quarter of the seed variance
    assert stats.between_sd(values, 0.2, runs=4) == pytest.approx(math.sqrt(0.04 - 0.01))
    with pytest.raises(ValueError):
        stats.between_sd(values, 0.1, runs=0)
    with pytest.raises(ValueError):
        stats.between_sd([0.1], 0.1)
