"""Theil-Sen and Kendall's tau for the short series a summary tests, in NumPy.

The same numbers as ``scipy.stats.theilslopes`` (Sen's interval, eq. 2.6 with
ties) and ``scipy.stats.kendalltau`` (tau-b; p-value exact below 34 points
without ties, else the normal approximation with tie corrections): a unit test
holds them to scipy's on random series with and without ties. Why not call
scipy: each call there costs ~0.3-0.5 ms of argument handling (its nan-policy
wrapper inspects signatures) for a few microseconds of arithmetic, and a run's
summary tests every series the run touched, two calls each: in ``serve``, 20
runs finishing together spent a third of their summaries' time there, on the
one interpreter lock the API also needs. Pairwise O(n^2) arithmetic: callers use
it up to a few hundred points (:data:`PAIRWISE_LIMIT`) and scipy's O(n log n)
code above.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

PAIRWISE_LIMIT = 500
# scipy.stats.norm.ppf(0.975), written out: this module must not import scipy.
Z975 = 1.959963984540054


def _tie_counts(values: np.ndarray) -> np.ndarray:
    """How many times each repeated value occurs (values seen once left out)."""
    _, counts = np.unique(values, return_counts=True)
    return counts[counts > 1].astype(np.int64)


def theil_sen(t: np.ndarray, x: np.ndarray) -> tuple[float, float, float, float]:
    """``(slope, intercept, low, high)`` of ``x`` against ``t``, 95 % interval:
    ``scipy.stats.theilslopes(x, t, alpha=0.95)``."""
    dt = t[:, np.newaxis] - t
    dx = x[:, np.newaxis] - x
    up = dt > 0
    slopes = dx[up] / dt[up]
    if not slopes.size:  # every t equal: no slope
        return math.nan, math.nan, math.nan, math.nan
    slopes.sort()
    slope = float(np.median(slopes))
    intercept = float(np.median(x) - slope * np.median(t))
    n, pairs = len(x), len(slopes)
    ties = sum(int(k * (k - 1) * (2 * k + 5)) for k in (*_tie_counts(t), *_tie_counts(x)))
    var = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if not var > 0:
        return slope, intercept, math.nan, math.nan
    sigma = math.sqrt(var)
    # Sen's ranks; numpy's round (half to even), as scipy.
    upper = min(int(np.round((pairs + Z975 * sigma) / 2.0)), pairs - 1)
    lower = max(int(np.round((pairs - Z975 * sigma) / 2.0)) - 1, 0)
    return slope, intercept, float(slopes[lower]), float(slopes[upper])


def kendall_tau(t: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Tau-b and its two-sided p-value: ``scipy.stats.kendalltau(t, x)``."""
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    i, j = np.triu_indices(n, k=1)
    st = np.sign(t[j] - t[i])
    sx = np.sign(x[j] - x[i])
    total = len(i)
    t_ties = int(np.count_nonzero(st == 0))
    x_ties = int(np.count_nonzero(sx == 0))
    if t_ties == total or x_ties == total:
        return math.nan, math.nan
    product = st * sx
    concordant = int(np.count_nonzero(product > 0))
    discordant = int(np.count_nonzero(product < 0))
    s = concordant - discordant
    tau = s / math.sqrt(total - t_ties) / math.sqrt(total - x_ties)
    tau = min(1.0, max(-1.0, tau))
    if t_ties == 0 and x_ties == 0 and (n <= 33 or min(discordant, total - discordant) <= 1):
        return tau, _exact_p(n, min(discordant, total - discordant))
    ct, cx = _tie_counts(t), _tie_counts(x)
    m = n * (n - 1.0)
    var = (
        (m * (2 * n + 5) - _sum3(ct, 5) - _sum3(cx, 5)) / 18.0
        + 2.0 * t_ties * x_ties / m
        + _sum3(ct, -2, linear=True) * _sum3(cx, -2, linear=True) / (9.0 * m * (n - 2))
    )
    z = s / math.sqrt(var)
    return tau, min(1.0, math.erfc(abs(z) / math.sqrt(2.0)))


def _sum3(counts: np.ndarray, c: int, *, linear: bool = False) -> float:
    """Sum of k(k-1)(2k+c) over tie counts, or of k(k-1)(k+c) with ``linear``."""
    k = counts.astype(np.float64)
    last = k + c if linear else 2 * k + c
    return float(np.sum(k * (k - 1) * last))


def _exact_p(n: int, c: int) -> float:
    """Two-sided p of ``c`` discordant pairs (the smaller tail) among ``n``
    untied points: twice the share of permutations with at most ``c`` inversions."""
    if n <= 2:
        return 1.0
    if 4 * c >= n * (n - 1):
        return 1.0
    if c <= 1:  # 1, or 1 + (n - 1) permutations: no table, any n
        at_most = 1 if c == 0 else n
        return min(1.0, 2.0 * at_most / math.factorial(n))
    return min(1.0, 2.0 * _inversions_cdf(n)[c] / math.factorial(n))


@functools.lru_cache(maxsize=64)
def _inversions_cdf(n: int) -> tuple[int, ...]:
    """Number of permutations of ``n`` with at most k inversions, for every k
    (Mahonian numbers, summed), as exact integers."""
    counts = [1]
    for size in range(2, n + 1):
        # The new element adds 0..size-1 inversions: a sliding sum of width size.
        prefix = [0, *itertools.accumulate(counts)]
        length = len(counts)
        counts = [
            prefix[min(k + 1, length)] - prefix[max(0, k - size + 1)]
            for k in range(length + size - 1)
        ]
    out, running = [], 0
    for c in counts:
        running += c
        out.append(running)
    return tuple(out)
