"""Attach to a ``dtf-core serve`` coordinator through its HTTP API
(:class:`dtf_core.service.client.CoordinatorClient`).

Each poll reads ``/v1/workers``, ``/v1/runs``, ``/v1/coordinator`` (who leads:
the header), and for the run in flight (else the newest) ``/v1/runs/{id}``,
``/tasks`` and ``/errors``; the rows are the Store's, so they map through the
same helpers as the DuckDB source. The task drill-down (and the Errors screen's
system context) read ``/attempts?task=ID`` when asked. The service does not
offer benchmark history yet: the Trends screen says so instead of failing.
Worker CPU and
memory are not in ``/v1/workers`` either, so sparklines stay empty in attach
mode until the service sends ``cpu``/``memory`` (then they fill in, per poll).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dtf_core.errors import DtfError, OptionError
from dtf_core.service.client import CoordinatorClient
from dtf_tui.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    CoordinatorInfo,
    SeriesKey,
    TrendSeries,
)
from dtf_tui.sources import SourceError, storeread
from dtf_tui.sources.livestate import LiveState

ERRORS_RUNS = 5  # runs whose errors are read each poll (the newest ones)


class HttpSource:
    poll_interval = 1.0

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
        ca_file: str | None = None,
        insecure: bool = False,
    ) -> None:
        self.url = url
        self.clock = clock
        self.label = f"coordinator: {url}"
        try:
            # A short timeout and no failover wait: the console's own loop retries.
            self.client = CoordinatorClient(
                url, token, timeout=timeout, failover_wait=0.0, ca_file=ca_file, insecure=insecure
            )
        except DtfError as exc:
            raise SourceError(str(exc)) from exc
        self._workers = LiveState(clock=clock)  # keeps the CPU/memory history per worker
        self._has_coordinator_route = True

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except DtfError as exc:  # AuthError, ServiceError, RunNotFoundError ...
            raise SourceError(str(exc)) from exc

    def poll(self) -> ClusterSnapshot:
        now = self.clock()
        self._workers.update_workers(self._call(self.client.workers))
        rows: list[dict[str, Any]] = self._call(self.client.runs, 20)
        rows = [r for r in rows if r.get("status") != "queued" and r.get("started_at")]
        focused = next((r for r in rows if r["status"] == "running"), rows[0] if rows else None)
        tasks = []
        if focused is not None:
            run_id = focused["run_id"]
            tasks = [storeread.task_row(run_id, t) for t in self._call(self.client.tasks, run_id)]
            live = self._call(self.client.run, run_id)
            focused = {**focused, "tasks": live.get("total") or focused.get("tasks")}
        # The focused run's total comes from the service, its counts from the tasks.
        fid = focused["run_id"] if focused else None
        runs = tuple(
            storeread.run_info(focused, tasks) if focused and r["run_id"] == fid
            else storeread.run_info(r)
            for r in rows
        )  # fmt: skip
        errors = [
            storeread.error_event(r["run_id"], e)
            for r in rows[:ERRORS_RUNS]
            for e in self._call(self.client.errors, r["run_id"])
        ]
        errors.sort(key=lambda e: (e.ts, e.run_id, e.task_id, e.attempt))
        coordinator, dashboard = self._coordinator()
        return ClusterSnapshot(
            source=self.label,
            taken_at=now,
            workers=self._workers.snapshot(self.label).workers,
            runs=runs,
            tasks=tuple(tasks),
            errors=tuple(errors),
            throughput=sum(r.throughput(now) for r in runs if r.in_flight),
            dashboard=dashboard,
            coordinator=coordinator,
        )

    def _coordinator(self) -> tuple[CoordinatorInfo | None, str]:
        """Who answers, whether it leads, its standbys (a service older than
        ``/v1/coordinator`` answers 404: the header then shows only the URL)."""
        if not self._has_coordinator_route:
            return None, ""
        try:
            body = self.client.coordinator()
        except OptionError:  # 404: not offered by this service
            self._has_coordinator_route = False
            return None, ""
        except DtfError as exc:
            raise SourceError(str(exc)) from exc
        info = CoordinatorInfo(
            url=self.client.base,
            leader=bool(body.get("leader")),
            since=float(body.get("since") or 0.0),
            pid=int(body.get("pid") or 0),
            standbys=tuple(str(s.get("url")) for s in body.get("standbys") or ()),
            database=str(body.get("database") or ""),
        )
        return info, str(body.get("dashboard") or "")

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        rows = self._call(self.client.attempts, run_id, task_id)
        return [storeread.attempt_info(a) for a in rows]

    def series_keys(self) -> list[SeriesKey]:
        raise SourceError("dtf-core serve does not offer benchmark history yet")

    def series(self, key: SeriesKey) -> TrendSeries:
        raise SourceError("dtf-core serve does not offer benchmark history yet")
