"""How ``dtf-core serve`` is watched from outside, wired in one place: the
Prometheus metrics fed by the runs, the store and the API
(:mod:`~dtf_core.service.metrics`), the ``/metrics`` and ``/v1/coordinator``
endpoints (:mod:`~dtf_core.service.routes`), and the Dask dashboard's link,
which each run's metadata carries into its reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dtf_core.cluster import embedded as cluster
from dtf_core.service import routes as extra_routes
from dtf_core.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from dtf_core.cluster.embedded import ClusterHandle
    from dtf_core.service.api import RequestHook
    from dtf_core.service.leadership import Presence
    from dtf_core.service.runmanager import RunManager
    from dtf_core.service.serve import ServeOptions

WORKERS_TIMEOUT = 3.0  # seconds a scrape waits for the scheduler: a dead one must not hang it


class Observability:
    def __init__(
        self,
        manager: RunManager,
        handle: ClusterHandle,
        opts: ServeOptions,
        presence: Presence,
        secret: bytes,
    ) -> None:
        client = handle.client

        def workers() -> list[dict[str, Any]]:
            return list(cluster.current_workers(client, timeout=WORKERS_TIMEOUT).values())

        self.metrics = ServiceMetrics(manager, db_path=opts.db, workers=workers)
        # Before the open runs of a previous leader resume: their tasks count too.
        manager.listeners.append(self.metrics.on_event)
        manager.store.flush_listeners.append(self.metrics.observe_flush)
        if handle.dashboard:
            manager.run_metadata["dashboard"] = handle.dashboard
        self.routes = extra_routes.routes(
            manager, secret, presence=presence, metrics=self.metrics,
            metrics_access=opts.metrics,
            extra={"dashboard": handle.dashboard, "scheduler": client.scheduler.address
                   if client.scheduler is not None else None},
        )  # fmt: skip
        self.on_request: RequestHook = extra_routes.request_observer(self.metrics)
