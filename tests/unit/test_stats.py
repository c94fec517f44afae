"""Median confidence intervals and summaries, checked against scipy/numpy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from dtf_core.analysis import median_ci, summarize


@pytest.mark.parametrize("n", [6, 7, 9, 10, 20, 33, 50, 101, 1000])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_median_ci_matches_scipy_quantile_test(n, confidence):
    x = np.random.default_rng(n).lognormal(size=n)
    if 1 - 2 * 0.5**n < confidence:
        pytest.skip("too few values for this confidence")
    ref = sps.quantile_test(x, q=np.median(x), p=0.5).confidence_interval(confidence)
    assert median_ci(x, confidence) == (ref.low, ref.high)


def test_median_ci_coverage_is_at_least_nominal():
    # Exact coverage of the chosen order statistics, from the binomial directly.
    for n in range(6, 200):
        x = np.arange(n, dtype=float)
        low, high = median_ci(x)
        lo_i, hi_i = int(low), int(high)  # 0-based positions of the order statistics
        assert lo_i == n - 1 - hi_i
        coverage = sps.binom.cdf(hi_i, n, 0.5) - sps.binom.cdf(lo_i, n, 0.5)
        assert coverage >= 0.95
        # ...and the next narrower pair would fall short.
        if lo_i + 1 <= n - 2 - lo_i:
            assert sps.binom.cdf(hi_i - 1, n, 0.5) - sps.binom.cdf(lo_i + 1, n, 0.5) < 0.95


@pytest.mark.parametrize("n", [1, 2, 5])
def test_small_samples_fall_back_to_min_max(n):
    x = [3.0, 1.0, 2.0, 5.0, 4.0][:n]
    assert median_ci(x) == (min(x), max(x))
    assert summarize(x)["ci_note"] is not None


def test_median_ci_rejects_bad_input():
    with pytest.raises(ValueError):
        median_ci([])
    with pytest.raises(ValueError):
        median_ci([1.0, 2.0], confidence=1.0)


def test_summarize_matches_numpy():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=57)
    s = summarize(x)
    assert s["n"] == 57
    assert s["mean"] == pytest.approx(np.mean(x))
    assert s["median"] == pytest.approx(np.median(x))
    assert s["stdev"] == pytest.approx(np.std(x, ddof=1))
    assert (s["min"], s["max"]) == (x.min(), x.max())
    assert s["ci_low"] <= s["median"] <= s["ci_high"]
    assert s["ci_note"] is None


def test_summarize_edges():
    assert summarize([])["n"] == 0 and summarize([])["median"] is None
    one = summarize([2.5])
    assert one["stdev"] is None and one["median"] == 2.5 == one["ci_low"] == one["ci_high"]
