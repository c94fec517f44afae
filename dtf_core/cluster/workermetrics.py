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


def identity_metrics(client: Client, timeout: float = METRICS_TIMEOUT) -> list[dict[str, Any]]:
    """The same rows, from the scheduler's ``identity`` handler: plain data, so it
    works on a dtf scheduler that refuses ``run_on_scheduler`` (``dtf-core serve``).
    ``processing`` holds no keys here, only as many entries as tasks executing."""

    async def _identity() -> dict[str, Any]:
        assert client.scheduler is not None
        info: dict[str, Any] = await client.scheduler.identity(n_workers=-1)
        return info

    info = client.sync(_identity, callback_timeout=timeout)
    rows = []
    for address, w in sorted((info.get("workers") or {}).items()):
        metrics = w.get("metrics") or {}
        executing = int((metrics.get("task_counts") or {}).get("executing", 0))
        rows.append(
            {
                "address": str(address),
                "name": str(w.get("name", address)),
                "host": str(w.get("host", "")),
                "resources": dict(w.get("resources") or {}),
                "nthreads": int(w.get("nthreads") or 0),
                "status": str(w.get("status") or "running"),
                "cpu": float(metrics.get("cpu") or 0.0),
                "memory": float(metrics.get("memory") or 0),
                "memory_limit": int(w.get("memory_limit") or 0),
                "processing": [""] * executing,
            }
        )
    return rows
