"""Statistics over stored results: summaries and intervals used by the reports."""

from dtf_core.analysis.stats import median_ci, summarize

__all__ = ["median_ci", "summarize"]
