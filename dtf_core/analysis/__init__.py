"""Statistics over stored results: summaries and intervals used by the reports.

``median_ci`` and ``summarize`` load on first use: importing a submodule (``direction``,
``history``) must not pull in ``scipy`` through ``stats``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dtf_core.analysis.stats import median_ci, summarize

__all__ = ["median_ci", "summarize"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dtf_core.analysis import stats

    value = getattr(stats, name)
    globals()[name] = value
    return value
