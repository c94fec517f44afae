"""How the scheduler of a dtf cluster queues tasks, so that priorities hold across runs.

Dask orders what waits by ``priority=``, but in two places: tasks it calls
"root-ish" wait in the scheduler's queue and are handed out when a worker
thread frees up (``worker-saturation``), the others go to a worker at once and
wait in its own ready heap. Which is which depends on how many tasks of the
same group (every dtf key is ``dtf-...``: one group) the scheduler holds at the
moment, so the first ``2 x threads`` tasks of a burst go straight to workers
and later ones queue. A nightly task already sitting in a worker's heap then
starts before a release run's higher-priority task that queued on the
scheduler after it (measured: test_run_priority.py failed that way).

So, on a dtf scheduler (the preload), a dtf task without placement
restrictions always queues, and a worker gets a queued task only when a thread
frees (``dtf.scheduler.worker-saturation``, 1.0): what starts next is always
the highest-priority task waiting. Tasks with resources or worker restrictions
are never queued by Dask; they wait in the worker's heap, which orders them by
priority too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dtf_core import config

__all__ = ["install"]


def install(scheduler: Any) -> None:
    scheduler.WORKER_SATURATION = float(config.get("scheduler.worker-saturation"))
    original: Callable[[Any], bool] = scheduler.is_rootish

    def is_rootish(ts: Any) -> bool:
        free = not (ts.resource_restrictions or ts.worker_restrictions or ts.host_restrictions)
        if free and isinstance(ts.key, str) and ts.key.startswith("dtf-"):
            return True
        return original(ts)

    scheduler.is_rootish = is_rootish
