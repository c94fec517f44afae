"""What the Trends screen marks on a benchmark's history: change points,
regressions among them, and a forecast band.

The statistics are ``dtf_core.analysis``'s, the same that ``dtf-core``'s
analysis commands report: change points from
:func:`~dtf_core.analysis.changepoints.detect` (rank scan, analytic p-value,
effect floor), direction from :mod:`~dtf_core.analysis.direction`, and the
forecast from :func:`~dtf_core.analysis.trends.forecast` (Theil-Sen line of the
last level segment with a 95 % prediction interval). This module only turns
them into plain lists indexed by run, which is all the chart needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dtf_core.analysis import direction
from dtf_core.analysis.changepoints import ChangePointOptions, detect
from dtf_core.analysis.history import DAY
from dtf_core.analysis.trends import TrendOptions
from dtf_core.analysis.trends import forecast as forecast_at
from dtf_core.service.views.snapshot import TrendSeries


@dataclass(frozen=True)
class TrendView:
    change_points: list[int] = field(default_factory=list)  # index of the first point after
    changes: list[float] = field(default_factory=list)  # relative change at each
    regressions: list[int] = field(default_factory=list)  # the change points that got worse
    forecast_x: list[float] = field(default_factory=list)  # run indices ahead
    forecast: list[float] = field(default_factory=list)
    forecast_low: list[float] = field(default_factory=list)
    forecast_high: list[float] = field(default_factory=list)


def change_points(values: list[float] | tuple[float, ...]) -> list[int]:
    return [c.index for c in detect(np.asarray(values, dtype=np.float64), ChangePointOptions())]


def analyse(series: TrendSeries, horizon: int = 5) -> TrendView:
    """Change points and a forecast ``horizon`` runs ahead (runs keep their recent spacing)."""
    x = np.asarray(series.values, dtype=np.float64)
    if len(x) == 0:
        return TrendView()
    found = detect(x, ChangePointOptions())
    higher = direction.higher_is_better(series.unit, series.higher_is_better or None)
    cps = [c.index for c in found]
    worse = [c.index for c in found if direction.worse(c.change, higher) > 0]
    view = TrendView(cps, [c.change for c in found], worse)
    last = cps[-1] if cps else 0
    t_days = (np.asarray(series.times, dtype=np.float64) - series.times[0]) / DAY
    seg_t, seg_x = t_days[last:], x[last:]
    if len(seg_x) < TrendOptions().min_points:
        return view
    step = float(np.median(np.diff(seg_t))) or 1.0
    points = [forecast_at(seg_t, seg_x, k * step, TrendOptions()) for k in range(1, horizon + 1)]
    if any(p is None for p in points):
        return view
    n = len(x)
    return TrendView(
        cps,
        view.changes,
        worse,
        forecast_x=[float(n - 1), *(float(n - 1 + k) for k in range(1, horizon + 1))],
        forecast=[float(x[-1]), *(p["value"] for p in points if p)],
        forecast_low=[float(x[-1]), *(p["low"] for p in points if p)],
        forecast_high=[float(x[-1]), *(p["high"] for p in points if p)],
    )
