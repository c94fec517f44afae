"""Small, assumption-light statistics for benchmark samples.

Benchmark timings are skewed and often multi-modal (caches, frequency scaling,
GC pauses), so dtf reports the median with a distribution-free confidence
interval taken from order statistics rather than mean ± t·s/√n, which assumes
normality.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _stats

Values = Sequence[float] | np.ndarray


def median_ci(values: Values, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median.

    Picks the symmetric pair of order statistics ``(x[L], x[n-1-L])`` (0-based,
    sorted) with the largest ``L`` such that ``P(Binom(n, 1/2) <= L) <= alpha/2``;
    the interval then covers the population median with probability at least
    ``confidence``, whatever the distribution. Same interval as
    ``scipy.stats.quantile_test(x, q=median).confidence_interval()``.

    When ``n`` is too small for any pair to reach ``confidence`` (``n < 6`` at
    95 %), falls back to ``(min, max)``, whose true coverage is then lower:
    :func:`summarize` says so in ``ci_note``.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    if n == 0:
        raise ValueError("median_ci() needs at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    q = _order_rank(n, confidence)
    if q < 0:
        return float(x[0]), float(x[-1])
    return float(x[q]), float(x[n - 1 - q])


@functools.lru_cache(maxsize=1024)
def _order_rank(n: int, confidence: float) -> int:
    """``L`` of :func:`median_ci`, -1 when none reaches ``confidence``. Cached: it
    depends on ``n`` alone, and scipy's binomial costs ~0.3 ms a call (a run's
    summary asks once per benchmark, mostly with the same few ``n``)."""
    half_alpha = (1.0 - confidence) / 2.0
    # ppf gives the smallest q with cdf(q) >= half_alpha; step back when it overshoots.
    q = int(_stats.binom.ppf(half_alpha, n, 0.5))
    if _stats.binom.cdf(q, n, 0.5) > half_alpha:
        q -= 1
    return q


def summarize(values: Values, confidence: float = 0.95) -> dict[str, Any]:
    """``n, mean, median, stdev, min, max, ci_low, ci_high`` (+ ``ci_note``).

    ``stdev`` is the sample standard deviation (ddof=1), ``None`` below two
    values; every statistic is ``None`` for no values. ``ci_note`` is ``None``
    unless the interval is the small-sample ``(min, max)`` fallback.
    """
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        keys = ("mean", "median", "stdev", "min", "max", "ci_low", "ci_high", "ci_note")
        return {"n": 0, **dict.fromkeys(keys)}
    low, high = median_ci(x, confidence)
    stdev = float(np.std(x, ddof=1)) if n > 1 else None
    note = None
    if _too_few(n, confidence):
        note = f"n={n} is too few for a {confidence:.0%} interval: (min, max) shown"
    return {
        "n": n,
        "mean": float(np.mean(x)),
        "median": float(np.median(x)),
        "stdev": stdev if stdev is None or math.isfinite(stdev) else None,
        "min": float(x.min()),
        "max": float(x.max()),
        "ci_low": low,
        "ci_high": high,
        "ci_note": note,
    }


def _too_few(n: int, confidence: float) -> bool:
    # The widest interval, (min, max), covers the median with 1 - 2 * 0.5**n.
    return 1.0 - 2.0 * 0.5**n < confidence


def median_ci_ranks(ns: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """0-based order statistics ``(lo, hi)`` of :func:`median_ci` for each count in ``ns``.

    Vectorised so that the store can pick the interval of thousands of groups
    in SQL; for ``n`` too small for ``confidence`` it is ``(0, n - 1)``.
    """
    n = np.asarray(ns, dtype=np.int64)
    half_alpha = (1.0 - confidence) / 2.0
    q = _stats.binom.ppf(half_alpha, n, 0.5).astype(np.int64)
    q -= (_stats.binom.cdf(q, n, 0.5) > half_alpha).astype(np.int64)
    lo = np.maximum(q, 0)
    hi = np.where(q < 0, n - 1, n - 1 - q)
    return lo, hi


def benjamini_hochberg(pvalues: Values) -> np.ndarray:
    """BH-adjusted p-values (q-values); NaN stays NaN and is not counted.

    Rejecting every hypothesis with ``q <= alpha`` keeps the expected share of
    false discoveries among the rejections at or below ``alpha`` (independent
    or positively dependent tests). Same numbers as
    ``scipy.stats.false_discovery_control(p, method="bh")`` on the finite ones.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = _stats.false_discovery_control(np.clip(p[ok], 0.0, 1.0), method="bh")
    return out


def robust_scale(x: np.ndarray) -> float:
    """MAD scaled to estimate the standard deviation of normal data (x 1.4826).

    Falls back to the scaled mean absolute deviation when more than half the
    values are equal (MAD 0), so that a quantised series still has a scale.
    """
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev)) * 1.482602218505602
    if mad > 0:
        return mad
    return float(np.mean(dev)) * 1.2533141373155003
