"""dtf_core.analysis.ranks gives scipy's numbers (theilslopes, kendalltau) on
random series, with and without ties, on both sides of the exact p-value's
33-point limit; the trend code uses it in place of scipy for short series."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from dtf_core.analysis import ranks


def _series(rng: np.random.Generator, n: int, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    t = np.sort(rng.uniform(0, 30, n))
    x = rng.normal(10, 2, n) + rng.uniform(-0.2, 0.2) * t
    if ties:  # timings rounded to a coarse clock, two runs at one instant
        x = np.round(x)
        t[n // 2] = t[n // 2 - 1]
    return t, x


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("n", [3, 4, 8, 20, 33, 34, 60, 250])
def test_same_numbers_as_scipy(n: int, ties: bool) -> None:
    rng = np.random.default_rng(n * 2 + ties)
    for _ in range(20):
        t, x = _series(rng, n, ties)
        r = sps.theilslopes(x, t, alpha=0.95)
        ours = ranks.theil_sen(t, x)
        theirs = (r.slope, r.intercept, r.low_slope, r.high_slope)
        assert all(_close(a, float(b)) for a, b in zip(ours, theirs, strict=True)), (ours, r)
        k = sps.kendalltau(t, x)
        tau, p = ranks.kendall_tau(t, x)
        assert _close(tau, float(k.statistic)) and _close(p, float(k.pvalue)), (tau, p, k)


@pytest.mark.parametrize("n", [5, 33, 100])
def test_monotone_and_one_swap_use_the_exact_tail(n: int) -> None:
    t = np.arange(n, dtype=float)
    for x in (t * 2.0, -t, np.r_[t[:2][::-1], t[2:]]):
        k = sps.kendalltau(t, x)
        tau, p = ranks.kendall_tau(t, x)
        assert _close(tau, float(k.statistic)) and _close(p, float(k.pvalue)), (n, tau, p, k)


def test_degenerate_inputs() -> None:
    same_t = np.zeros(5)
    assert all(math.isnan(v) for v in ranks.theil_sen(same_t, np.arange(5.0)))
    assert all(math.isnan(v) for v in ranks.kendall_tau(same_t, np.arange(5.0)))
    assert all(math.isnan(v) for v in ranks.kendall_tau(np.arange(5.0), np.ones(5)))
    assert pytest.approx(float(sps.norm.ppf(0.975)), abs=1e-15) == ranks.Z975
