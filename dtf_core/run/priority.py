"""One Dask priority from a run's priority and a task's.

Dask runs the queued task with the highest ``priority=`` first (on the
scheduler's queue and in each worker's ready heap) and never preempts a task
that is running. dtf has two levels: a run's priority (``--priority``, or what
``dtf-core serve`` grants its submitter) orders concurrent runs, a task's (its
suite's ``priority`` key) orders the tasks of one run. Both lie within
``+-PRIORITY_LIMIT``, so ``run * (2 * limit + 1) + task`` keeps them
lexicographic: a release-blocking run's lowest task still overtakes a nightly
run's highest one.
"""

from __future__ import annotations

from typing import Any

from dtf_core.model import PRIORITY_LIMIT

__all__ = ["dask_priority", "of_metadata"]

_SPAN = 2 * PRIORITY_LIMIT + 1


def dask_priority(run: int, task: int) -> int:
    return run * _SPAN + task


def of_metadata(metadata: dict[str, Any] | None) -> int:
    """A run's priority as stored in its metadata (``priority``; 0 when absent):
    what a resumed run is scheduled with again."""
    try:
        return int((metadata or {}).get("priority") or 0)
    except (TypeError, ValueError):
        return 0
