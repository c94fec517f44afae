"""How every report, the analysis commands and the console write one value: a measurement with
its unit, a percentage, a p-value, a moment in time, parameters, a Markdown table.

One function per kind of value, so that the same number reads the same everywhere:

* :func:`humanize`: a measurement; seconds get the SI scale of the value, or of ``ref``
  so that an interval reads in its median's scale (``1.2 ms to 1.5 ms``).
* :func:`when`: a moment, always ``YYYY-MM-DD HH:MM UTC`` (minutes are enough to tell runs
  apart at a glance, the zone makes it unambiguous in CI logs read from anywhere); ``n/a``
  when unknown (``None``, ``0`` or not finite).
* :func:`pct`, :func:`pval`, :func:`params_label`.
* :func:`table`: a Markdown table whose cells hold one line each (the first line of a
  multi-line value such as a failure message, ``|`` escaped, at most 200 characters).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_SCALES = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def humanize(value: float | None, unit: str, ref: float | None = None) -> str:
    """``0.00123, "s"`` -> ``1.23 ms``; ``ref`` picks the scale (to align a CI)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit != "s":
        return f"{value:.4g} {unit}".rstrip()
    size = abs(ref if ref is not None else value)
    for factor, name in _SCALES:
        if size >= factor or factor == _SCALES[-1][0]:
            return f"{value / factor:.3g} {name}"
    raise AssertionError("unreachable")


def when(ts: float | None) -> str:
    """A unix time as ``2026-03-01 14:05 UTC``; ``n/a`` when unknown."""
    if not ts or not math.isfinite(ts):
        return "n/a"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def pct(x: float | None, signed: bool = True) -> str:
    """A ratio as a percentage: ``0.052`` -> ``+5.2%`` (``5.2%`` unsigned)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{100 * x:+.1f}%" if signed else f"{100 * x:.1f}%"


def pval(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def params_label(params: dict[str, Any] | None) -> str:
    """``{"n": 64, "dtype": "f32"}`` -> ``n=64, dtype=f32`` (in the given order)."""
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items())


def cell(value: Any) -> str:
    """One Markdown table cell: the first line of the value, ``|`` escaped, 200 characters."""
    first = str(value if value is not None else "").strip().splitlines()
    return (first[0] if first else "").replace("|", "\\|")[:200]


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines, followed by an empty line."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return [*lines, *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows), ""]
