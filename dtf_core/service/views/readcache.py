"""What ``dtf-core serve``'s console builds reread only when it may have changed.

A build (:mod:`~dtf_core.service.views.console`) comes every few hundred
milliseconds while a console is attached; most of its time went to reading the
focused run's task rows and the listed runs again, on a machine whose cores the
runs it shows need. Both change far less often than builds come: a task's row
changes once, from pending to its final state, in the run's flushes (every
``store.flush-interval``); the listed runs change when a run starts or ends.
Each cache here tells that from a read a tenth the price, and reads anyway after
a while, so that a change it cannot see (retention, another writer) shows too;
the run's recorded workers are simply read at most once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from dtf_core.service.views import storeread
from dtf_core.service.views.snapshot import TaskRow, WorkerInfo
from dtf_core.store import StoreReader

TASKS_TTL = 2.0  # s a running run's tasks are reused while the same ones are pending
# s a run's recorded workers and their health are reused: the local console
# shows them a poll (a second) late at most, and so does serve's.
WORKERS_TTL = 1.0
RUNS_TTL = 5.0  # s the listed runs are reused while the runs in flight stay the same


class FocusedTasks:
    """``storeread.task_rows`` of the focused run, as ``storeread.snapshot``'s
    ``tasks_of``. While the run's pending tasks stay the same, the rows held are
    reused; when some left pending (the run's flushes), only the rows that
    changed are read (tasks final since, and tasks new since: a split chunk):
    a task's row changes once, from pending to final, so a build reads the
    results of the last flush, not the whole run. Read whole when another run
    is focused or its status changed, and after :data:`TASKS_TTL` while it
    runs (a change those rules cannot see: a final rewritten); a finished
    run's rows no longer change."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._mark: tuple[str, str] | None = None  # run id, its status
        self._pending: list[str] | None = None
        self._rows: dict[str, TaskRow] = {}
        self._listed: list[TaskRow] = []
        self._read_at = 0.0
        self.reads = 0  # whole reads so far (the tests count them)
        self.partial_reads = 0  # reads of the changed rows only

    def __call__(self, store: StoreReader, row: Mapping[str, Any]) -> list[TaskRow]:
        run_id, status = str(row["run_id"]), str(row["status"])
        running = status == "running"
        pending = store.unfinished_tasks(run_id) if running else None
        stale = running and self.clock() - self._read_at >= TASKS_TTL
        if self._mark != (run_id, status) or stale:
            self._keep(storeread.task_rows(store, run_id), replace=True)
            self._mark, self._read_at, self.reads = (run_id, status), self.clock(), self.reads + 1
        elif pending != self._pending and pending is not None:
            final = [k for k, r in self._rows.items() if r.status != "pending"]
            new = [k for k in pending if k not in self._rows]
            self._keep(storeread.task_row_changes(store, run_id, final, new), replace=False)
            self.partial_reads += 1
        self._pending = pending
        return self._listed

    def _keep(self, rows: list[TaskRow], *, replace: bool) -> None:
        if replace:
            self._rows = {}
        self._rows.update((r.task_id, r) for r in rows)
        # As the whole read orders them (UTF-8 bytes sort as code points).
        self._listed = [self._rows[k] for k in sorted(self._rows)]


class ListedRuns:
    """``store.list_runs(limit)``, read again when the file's runs in flight are
    not the service's (a run started or ended, or the file has not caught up
    with it yet) or after :data:`RUNS_TTL`. The running run's counts come from
    its tasks; with two in flight, the other's come from this read: read each
    time."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._cached: tuple[float, list[Any]] | None = None
        self.reads = 0

    def __call__(self, store: StoreReader, running: Collection[str]) -> list[Any]:
        cached = self._cached
        if cached is not None and len(running) <= 1 and self.clock() - cached[0] < RUNS_TTL:
            listed = {r["run_id"] for r in cached[1] if r["status"] == "running"}
            if listed == set(running):
                return cached[1]
        rows: list[Any] = list(store.list_runs(limit=self.limit))
        self._cached, self.reads = (self.clock(), rows), self.reads + 1
        return rows


class RecordedWorkers:
    """``storeread.workers`` of the focused run, as ``storeread.snapshot``'s
    ``workers_of``: read again for another run, when its status changed (its
    end: the errors kept of a finished run take their hardware from this read),
    and after :data:`WORKERS_TTL`. A run records its workers as they join and
    their health as it judges it, both rarely; builds come every few hundred
    milliseconds during a run, and this read (two queries) was a third of a
    build's time there."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cached: tuple[tuple[str, str], float, list[WorkerInfo]] | None = None
        self.reads = 0

    def __call__(self, store: StoreReader, row: Mapping[str, Any]) -> list[WorkerInfo]:
        mark = (str(row["run_id"]), str(row["status"]))
        cached = self._cached
        if cached is not None and cached[0] == mark and self.clock() - cached[1] < WORKERS_TTL:
            return cached[2]
        found = storeread.workers(store, mark[0])
        self._cached, self.reads = (mark, self.clock(), found), self.reads + 1
        return found
