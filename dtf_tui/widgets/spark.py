"""Sparklines as text, so that a table cell can hold one."""

from __future__ import annotations

from collections.abc import Sequence

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, maximum: float | None = None) -> str:
    """The last ``width`` values as bars scaled to ``maximum`` (default: their max)."""
    tail = list(values)[-width:]
    if not tail:
        return " " * width
    top = maximum if maximum else max(tail)
    if top <= 0:
        return (_BARS[0] * len(tail)).rjust(width)
    bars = "".join(_BARS[min(7, max(0, int(v / top * 7.999)))] for v in tail)
    return bars.rjust(width)


def bar(fraction: float, width: int) -> str:
    """A progress bar of ``width`` cells."""
    fraction = max(0.0, min(1.0, fraction))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)


def human_bytes(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or unit == "T":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}T"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
