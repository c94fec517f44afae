"""Attach to a ``dtf-core serve`` coordinator over its HTTP JSON API.

UNTESTED AGAINST THE REAL SERVICE: the service is being built in parallel, so
this class codes against the small interface below (kept in this one class so
that it can be adapted when both land) and is tested against a stub server.

Every request sends ``Authorization: Bearer <token>`` and answers JSON::

    GET /api/v1/workers                       {"workers": [worker, ...]}
        worker: address, name, host, resources {NAME: n}, nthreads, status,
                cpu (percent now), memory (bytes now), memory_limit,
                processing [dask keys]
    GET /api/v1/runs?limit=N                  {"runs": [RunInfo fields, ...]}   newest first
    GET /api/v1/runs/{run_id}/tasks           {"tasks": [TaskRow fields, ...]}
    GET /api/v1/runs/{run_id}/tasks/{task_id}/attempts   {"attempts": [AttemptInfo fields]}
    GET /api/v1/errors?since=UNIX_SECONDS     {"errors": [ErrorEvent fields, ...]}
    GET /api/v1/benchmarks                    {"series": [{"benchmark", "hardware"}, ...]}
    GET /api/v1/benchmarks/history?benchmark=B&hardware=H   TrendSeries fields

``/api/v1/events`` (a stream) would cut the polling; polling is enough for a
view that refreshes once a second and survives reconnects for free.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from dtf_tui.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    ErrorEvent,
    RunInfo,
    SeriesKey,
    TaskRow,
    TrendSeries,
)
from dtf_tui.sources import SourceError
from dtf_tui.sources.livestate import LiveState

T = TypeVar("T")
ERRORS_WINDOW = 7 * 24 * 3600.0  # the Errors screen's longest range


def _build(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from the fields it knows: a newer service may send more."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


class HttpSource:
    poll_interval = 1.0

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.clock = clock
        self.label = f"coordinator: {self.url}"
        self._workers = LiveState(clock=clock)  # keeps the CPU/memory history per worker

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _get(self, path: str, **query: Any) -> Any:
        url = f"{self.url}/api/v1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise SourceError(f"{self.url} refused the token (HTTP {exc.code})") from exc
            raise SourceError(f"{url}: HTTP {exc.code}") from exc
        except (OSError, ValueError) as exc:  # URLError, timeouts, bad JSON
            raise SourceError(f"cannot reach {self.url}: {exc}") from exc

    def poll(self) -> ClusterSnapshot:
        now = self.clock()
        self._workers.update_workers(self._get("workers")["workers"])
        runs = tuple(_build(RunInfo, r) for r in self._get("runs", limit=20)["runs"])
        focused = next((r for r in runs if r.in_flight), runs[0] if runs else None)
        tasks: tuple[TaskRow, ...] = ()
        if focused is not None:
            path = f"runs/{urllib.parse.quote(focused.run_id, safe='')}/tasks"
            tasks = tuple(_build(TaskRow, t) for t in self._get(path)["tasks"])
        errors = tuple(
            _build(ErrorEvent, e) for e in self._get("errors", since=now - ERRORS_WINDOW)["errors"]
        )
        workers = self._workers.snapshot(self.label).workers
        return ClusterSnapshot(
            source=self.label,
            taken_at=now,
            workers=workers,
            runs=runs,
            tasks=tasks,
            errors=errors,
            throughput=sum(r.throughput(now) for r in runs if r.in_flight),
        )

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        q = urllib.parse.quote
        path = f"runs/{q(run_id, safe='')}/tasks/{q(task_id, safe='')}/attempts"
        return [_build(AttemptInfo, a) for a in self._get(path)["attempts"]]

    def series_keys(self) -> list[SeriesKey]:
        return [_build(SeriesKey, s) for s in self._get("benchmarks")["series"]]

    def series(self, key: SeriesKey) -> TrendSeries:
        data = self._get("benchmarks/history", benchmark=key.benchmark, hardware=key.hardware)
        return TrendSeries(
            key=key,
            unit=str(data.get("unit", "s")),
            run_ids=tuple(data.get("run_ids", ())),
            times=tuple(float(t) for t in data.get("times", ())),
            values=tuple(float(v) for v in data.get("values", ())),
            higher_is_better=bool(data.get("higher_is_better", False)),
        )
