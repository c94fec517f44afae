"""What the Trends screen marks on a benchmark's history: it lives in
:mod:`dtf_core.service.views.trend`, because ``dtf-core serve`` sends the same
analysis with a series."""

from dtf_core.service.views.trend import TrendView, analyse, change_points

__all__ = ["TrendView", "analyse", "change_points"]
