"""Slow drifts, odd runs and where a series is heading.

* **Trend**: Theil-Sen slope (the median of pairwise slopes: a few wild runs
  cannot tilt it) with Sen's confidence interval, and the Mann-Kendall test
  (Kendall's tau between time and value, ``scipy.stats.kendalltau``) for its
  significance, Benjamini-Hochberg across series. A trend is ``worsening`` or
  ``improving`` only when significant *and* the fitted line moves at least
  ``min_effect`` (5 %) of the median over the window. Above ``exact_limit``
  points the slope comes from ``max_pairs`` random pairs (fixed seed), not all
  n(n-1)/2: the median of 20,000 pairwise slopes is within a small fraction of
  the interval's width of the exact one, and costs a millisecond, not seconds.
* **Anomalies**: a run whose robust z-score, ``(x - median) / (1.4826 MAD)``
  within its level segment (between change points, so that a level shift is
  not a thousand anomalies), exceeds 3.5 in absolute value (Iglewicz & Hoaglin).
* **Forecast**: the Theil-Sen line of the last level segment, ``horizon``
  ahead of the last run, with a prediction interval from the empirical 2.5 %
  and 97.5 % residual quantiles, widened by the slope's interval times the
  horizon. Fewer than ``min_points`` runs since the last shift: no forecast.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from dtf_core.analysis import direction, ranks
from dtf_core.analysis.changepoints import ChangePointOptions, detect
from dtf_core.analysis.history import DAY, History, Series
from dtf_core.analysis.stats import benjamini_hochberg, robust_scale
from dtf_core.errors import OptionError

_Z975 = ranks.Z975


@dataclass(frozen=True)
class TrendOptions:
    alpha: float = 0.05  # false discovery rate across series (BH on Mann-Kendall p)
    min_effect: float = 0.05  # relative move over the window that a trend must reach
    min_points: int = 8
    anomaly_z: float = 3.5
    horizon_days: float = 7.0
    exact_limit: int = 200
    max_pairs: int = 20_000
    recent_anomalies: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise OptionError(f"--alpha must lie in (0, 1), got {self.alpha}")
        if self.horizon_days < 0:
            raise OptionError(f"--horizon must be >= 0, got {self.horizon_days} days")


def theil_sen(
    t: np.ndarray, x: np.ndarray, *, exact_limit: int = 200, max_pairs: int = 20_000, seed: int = 0
) -> tuple[float, float, float, float]:
    """``(slope, intercept, low, high)``; 95 % interval of the slope (Sen 1968).

    Exact (scipy's ``theilslopes`` numbers, :mod:`~dtf_core.analysis.ranks`) up to
    ``exact_limit`` points, else from ``max_pairs`` random pairs with the
    interval's ranks scaled to the sample.
    """
    n = len(x)
    if n <= exact_limit:
        if n <= ranks.PAIRWISE_LIMIT:  # scipy's numbers without its per-call cost
            return ranks.theil_sen(t, x)
        r = sps.theilslopes(x, t, alpha=0.95)
        return float(r.slope), float(r.intercept), float(r.low_slope), float(r.high_slope)
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, max_pairs)
    j = rng.integers(0, n, max_pairs)
    dt = t[j] - t[i]
    ok = dt != 0
    slopes = (x[j][ok] - x[i][ok]) / dt[ok]
    m = len(slopes)
    if not m:
        return math.nan, math.nan, math.nan, math.nan
    # Sen's interval: ranks (N -+ z sqrt(Var S)) / 2 of the N pairwise slopes,
    # as fractions of N so that they apply to the sample.
    xs = np.sort(x)
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    c = np.diff(np.append(starts, n)).astype(np.float64)
    var_s = (n * (n - 1) * (2 * n + 5) - np.sum(c * (c - 1) * (2 * c + 5))) / 18.0
    half = _Z975 * math.sqrt(max(var_s, 0.0)) / (n * (n - 1) / 2.0) / 2.0
    at = [int(max(0.5 - half, 0.0) * (m - 1)), (m - 1) // 2, int(min(0.5 + half, 1.0) * (m - 1))]
    part = np.partition(slopes, at)  # three order statistics in O(m), no full sort
    slope, low, high = float(part[at[1]]), float(part[at[0]]), float(part[at[2]])
    intercept = float(np.median(x) - slope * np.median(t))
    return slope, intercept, low, high


def mann_kendall(t: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Kendall's tau between time and value and its two-sided p-value."""
    if len(x) < 3 or np.ptp(x) == 0:
        return 0.0, 1.0
    if len(x) <= ranks.PAIRWISE_LIMIT:  # scipy's numbers without its per-call cost
        return ranks.kendall_tau(t, x)
    r = sps.kendalltau(t, x)
    return float(r.statistic), float(r.pvalue)


def robust_z(x: np.ndarray, segments: list[int]) -> np.ndarray:
    """Robust z of each point against the median and scaled MAD of its segment."""
    z = np.zeros(len(x))
    bounds = [0, *segments, len(x)]
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        seg = x[lo:hi]
        scale = robust_scale(seg)
        if scale > 0:
            z[lo:hi] = (seg - np.median(seg)) / scale
    return z


def forecast(
    t_days: np.ndarray,
    x: np.ndarray,
    horizon: float,
    opts: TrendOptions,
    fit: tuple[float, float, float, float] | None = None,
) -> dict[str, float] | None:
    """Value at ``t_days[-1] + horizon`` with a 95 % prediction interval (``fit``:
    the Theil-Sen line of these points, when already known)."""
    if len(x) < opts.min_points:
        return None
    slope, icpt, lo, hi = fit or theil_sen(
        t_days, x, exact_limit=opts.exact_limit, max_pairs=opts.max_pairs
    )
    if not math.isfinite(slope):
        slope, icpt, lo, hi = 0.0, float(np.median(x)), 0.0, 0.0
    at = float(t_days[-1] + horizon)
    value = icpt + slope * at
    resid = x - (icpt + slope * t_days)
    q_lo, q_hi = np.quantile(resid, [0.025, 0.975])
    return {
        "horizon_days": horizon,
        "value": float(value),
        "low": float(value + q_lo + (lo - slope) * horizon),
        "high": float(value + q_hi + (hi - slope) * horizon),
    }


def series_trend(
    s: Series, history: History, opts: TrendOptions, cp_opts: ChangePointOptions
) -> dict[str, Any]:
    n = len(s.x)
    out: dict[str, Any] = {**s.key(), "n": n, "first_at": float(s.t[0]), "last_at": float(s.t[-1])}
    med = float(np.median(s.x))
    out["median"] = med
    if n < opts.min_points:
        return {**out, "verdict": "insufficient data", "p_value": None}
    t_days = (s.t - s.t[0]) / DAY
    fit = theil_sen(t_days, s.x, exact_limit=opts.exact_limit, max_pairs=opts.max_pairs)
    slope, _, lo, hi = fit
    tau, p = mann_kendall(t_days, s.x)
    span = float(t_days[-1])
    rel = slope / abs(med) if med and math.isfinite(slope) else math.nan
    changes = detect(s.x, cp_opts)
    cps = [c.index for c in changes]
    z = robust_z(s.x, cps)
    bad = np.flatnonzero(np.abs(z) > opts.anomaly_z)
    last = cps[-1] if cps else 0
    out.update(
        slope_per_day=slope,
        slope_low=lo,
        slope_high=hi,
        rel_slope_per_day=rel,
        change_over_window=rel * span if math.isfinite(rel) else None,
        tau=tau,
        p_value=p,
        anomalies=len(bad),
        recent_anomalies=[
            {**history.run(int(s.rix[i])), "value": float(s.x[i]), "z": float(z[i])}
            for i in bad[-opts.recent_anomalies :][::-1]
        ],
        last_change=(
            {**history.run(int(s.rix[last])), "change": changes[-1].change} if cps else None
        ),
        forecast=forecast(
            t_days[last:], s.x[last:], opts.horizon_days, opts, fit if last == 0 else None
        ),
    )
    return out


def find_trends(
    history: History,
    opts: TrendOptions | None = None,
    cp_opts: ChangePointOptions | None = None,
) -> list[dict[str, Any]]:
    """One trend record per series, with ``q_value`` and ``verdict``."""
    o = opts or TrendOptions()
    rows = [series_trend(s, history, o, cp_opts or ChangePointOptions()) for s in history]
    qs = benjamini_hochberg([r["p_value"] if r["p_value"] is not None else np.nan for r in rows])
    for r, q in zip(rows, qs, strict=True):
        if "verdict" in r:  # too few points: nothing to test
            r["q_value"] = None
            continue
        r["q_value"] = float(q)
        moved = r["change_over_window"]
        if q > o.alpha or moved is None or abs(moved) < o.min_effect:
            r["verdict"] = "stable"
        else:
            worse = direction.worse(moved, r["higher_is_better"]) > 0
            r["verdict"] = "worsening" if worse else "improving"
    return rows
