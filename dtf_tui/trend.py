"""What the Trends screen marks on a benchmark's history: change points,
regressions among them, and a forecast band.

TEMPORARY: dtf_core.analysis (change points, trends, forecast) is being built
on main. Until it lands, :func:`analyse` uses the small method below; once it
lands, :func:`analyse` should call it and keep returning a :class:`TrendView`,
which is all the chart needs.

Method: binary segmentation on the per-run medians. The split minimises the
absolute deviation around each side's median; it is a change point when the
two medians differ by more than ``threshold`` standard errors (noise measured
robustly from successive differences) and by more than ``min_shift`` of the
level, so that a tiny but steady wobble is not reported. The forecast is a straight line fitted to
the last segment, with a band of two residual standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtf_tui.snapshot import TrendSeries


@dataclass(frozen=True)
class TrendView:
    change_points: list[int] = field(default_factory=list)  # index of the first point after
    regressions: list[int] = field(default_factory=list)  # the change points that got worse
    forecast_x: list[float] = field(default_factory=list)  # point indices ahead
    forecast: list[float] = field(default_factory=list)
    forecast_low: list[float] = field(default_factory=list)
    forecast_high: list[float] = field(default_factory=list)


def noise(x: np.ndarray) -> float:
    """Robust noise level from successive differences: a level shift moves one
    difference, not the median of them."""
    if len(x) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(x))) / np.sqrt(2))


def _best_split(x: np.ndarray, min_size: int) -> int:
    """The split that leaves the least absolute deviation around each side's
    median (an L1 cost: one outlier cannot pull it)."""
    best_k, best_cost = -1, np.inf
    for k in range(min_size, len(x) - min_size + 1):
        left, right = x[:k], x[k:]
        cost = np.abs(left - np.median(left)).sum() + np.abs(right - np.median(right)).sum()
        if cost < best_cost:
            best_k, best_cost = k, cost
    return best_k


def change_points(
    values: list[float] | tuple[float, ...],
    *,
    min_size: int = 3,
    threshold: float = 6.0,
    min_shift: float = 0.05,
) -> list[int]:
    """Indices where a new level starts."""
    x = np.asarray(values, dtype=np.float64)
    sigma = noise(x) or 1e-12
    found: list[int] = []

    def split(lo: int, hi: int) -> None:
        if hi - lo < 2 * min_size:
            return
        k = _best_split(x[lo:hi], min_size)
        if k < 0:
            return
        left, right = np.median(x[lo : lo + k]), np.median(x[lo + k : hi])
        z = abs(right - left) / (sigma * np.sqrt(1 / k + 1 / (hi - lo - k)))
        if z < threshold or abs(right - left) <= min_shift * max(abs(left), 1e-12):
            return
        found.append(lo + k)
        split(lo, lo + k)
        split(lo + k, hi)

    split(0, len(x))
    return sorted(found)


def analyse(series: TrendSeries, horizon: int = 5) -> TrendView:
    values = list(series.values)
    cps = change_points(values)
    regressions = []
    bounds = [0, *cps, len(values)]
    for i, cp in enumerate(cps):
        before = float(np.median(values[bounds[i] : cp]))
        after = float(np.median(values[cp : bounds[i + 2]]))
        worse = after < before if series.higher_is_better else after > before
        if worse:
            regressions.append(cp)
    last = np.asarray(values[bounds[-2] :], dtype=np.float64)
    if len(last) < 2:
        return TrendView(cps, regressions)
    xs = np.arange(bounds[-2], len(values), dtype=np.float64)
    slope, intercept = np.polyfit(xs, last, 1)
    resid = last - (slope * xs + intercept)
    band = 2.0 * float(np.std(resid, ddof=1)) if len(last) > 2 else 0.0
    ahead = np.arange(len(values) - 1, len(values) + horizon, dtype=np.float64)
    mid = slope * ahead + intercept
    return TrendView(
        cps,
        regressions,
        forecast_x=ahead.tolist(),
        forecast=mid.tolist(),
        forecast_low=(mid - band).tolist(),
        forecast_high=(mid + band).tolist(),
    )
