"""The console's data model: it lives in :mod:`dtf_core.service.views.snapshot`,
because ``dtf-core serve`` builds the same snapshots for attached consoles."""

from dtf_core.service.views.snapshot import (
    SEVERITIES,
    AttemptInfo,
    ClusterSnapshot,
    CoordinatorInfo,
    ErrorEvent,
    RunInfo,
    SeriesKey,
    TaskRow,
    TrendSeries,
    WorkerInfo,
    severity_rank,
)

__all__ = [
    "SEVERITIES",
    "AttemptInfo",
    "ClusterSnapshot",
    "CoordinatorInfo",
    "ErrorEvent",
    "RunInfo",
    "SeriesKey",
    "TaskRow",
    "TrendSeries",
    "WorkerInfo",
    "severity_rank",
]
