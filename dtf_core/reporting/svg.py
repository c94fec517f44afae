"""Inline SVG charts for the HTML report: no JavaScript, no external files.

A chart is a string of ``<svg>`` markup sized in CSS pixels, so that the HTML
report stays one self-contained file that any browser (and a CI artifact
viewer) shows as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 12, 22, 22


def _fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0"
    mag = abs(v)
    if mag >= 1000 or mag < 0.01:
        return f"{v:.2e}"
    return f"{v:.3g}"


def line_chart(
    x: Sequence[float],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    changes: Sequence[int] = (),
    anomalies: Sequence[int] = (),
    band: tuple[float, float, float] | None = None,
) -> str:
    """Values in run order, with change points (dashed lines), anomalies (red dots)
    and an optional forecast ``(value, low, high)`` drawn one step past the end."""
    y = np.asarray(x, dtype=np.float64)
    n = len(y)
    if n == 0:
        return ""
    extra = 1 if band else 0
    lo = float(np.nanmin([*y, *(band[1:] if band else ())]))
    hi = float(np.nanmax([*y, *(band[1:] if band else ())]))
    if hi == lo:
        lo, hi = lo - 1.0 if lo == 0 else lo * 0.99, hi + 1.0 if hi == 0 else hi * 1.01
    iw, ih = width - _PAD_L - _PAD_R, height - _PAD_T - _PAD_B

    def px(i: float) -> float:
        return _PAD_L + iw * (i / max(n - 1 + extra, 1))

    def py(v: float) -> float:
        return _PAD_T + ih * (1 - (v - lo) / (hi - lo))

    pts = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_PAD_L}" y="14" class="t">{escape(title)}</text>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T + ih}" x2="{width - _PAD_R}" y2="{_PAD_T + ih}"'
        ' class="ax"/>',
        f'<text x="{_PAD_L - 4}" y="{py(hi) + 4:.1f}" class="l">{_fmt(hi)}</text>',
        f'<text x="{_PAD_L - 4}" y="{py(lo) + 4:.1f}" class="l">{_fmt(lo)}</text>',
    ]
    for c in changes:
        if 0 < c < n:
            cx = (px(c - 1) + px(c)) / 2
            parts.append(
                f'<line x1="{cx:.1f}" y1="{_PAD_T}" x2="{cx:.1f}" y2="{_PAD_T + ih}" class="cp"/>'
            )
    parts.append(f'<polyline points="{pts}" class="s"/>')
    for a in anomalies:
        if 0 <= a < n:
            parts.append(f'<circle cx="{px(a):.1f}" cy="{py(y[a]):.1f}" r="3" class="an"/>')
    if band:
        value, blo, bhi = band
        x0, x1 = px(n - 1), px(n)
        parts.append(
            f'<polygon points="{x0:.1f},{py(y[-1]):.1f} {x1:.1f},{py(bhi):.1f}'
            f' {x1:.1f},{py(blo):.1f}" class="pi"/>'
        )
        parts.append(f'<circle cx="{x1:.1f}" cy="{py(value):.1f}" r="3" class="fc"/>')
    parts.append("</svg>")
    return "".join(parts)


CSS = (
    "svg .s{fill:none;stroke:#2563eb;stroke-width:1.3}"
    "svg .ax{stroke:#999}svg .cp{stroke:#d97706;stroke-dasharray:4 3}"
    "svg .an{fill:#dc2626}svg .pi{fill:#93c5fd;opacity:.5}svg .fc{fill:#1d4ed8}"
    "svg .t{font:12px sans-serif;fill:#111}svg .l{font:10px sans-serif;fill:#555;"
    "text-anchor:end}"
)
