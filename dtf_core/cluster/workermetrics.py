"""Every worker as the scheduler sees it now: CPU, memory, the keys it runs.

Read by the console of an in-process run (``dtf-tui run``) and by ``dtf-core
serve`` for attached consoles, with a short timeout of its own:
``scheduler_info()`` blocks ~20 s when the scheduler is gone (DESIGN.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributed import Client

METRICS_TIMEOUT = 2.0  # seconds: a dead scheduler must not stall the poll thread


def worker_metrics(client: Client, timeout: float = METRICS_TIMEOUT) -> list[dict[str, Any]]:
    """Every worker as the scheduler sees it now, with CPU, memory and the keys it runs."""

    # Nested so that cloudpickle ships it by value: an external scheduler need
    # not have dtf installed.
    def _collect(dask_scheduler: Any) -> list[dict[str, Any]]:
        return [
            {
                "address": ws.address,
                "name": str(ws.name),
                "host": ws.host,
                "resources": dict(ws.resources),
                "nthreads": ws.nthreads,
                "status": getattr(ws.status, "name", str(ws.status)),
                "cpu": ws.metrics.get("cpu", 0.0),
                "memory": ws.metrics.get("memory", 0),
                "memory_limit": ws.memory_limit or 0,
                "processing": [str(ts.key) for ts in ws.processing],
            }
            for ws in dask_scheduler.workers.values()
        ]

    result: list[dict[str, Any]] = client.sync(
        client._run_on_scheduler, _collect, callback_timeout=timeout
    )
    return result
