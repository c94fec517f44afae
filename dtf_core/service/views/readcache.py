"""What ``dtf-core serve``'s console builds reread only when it may have changed.

A build (:mod:`~dtf_core.service.views.console`) comes every few hundred
milliseconds while a console is attached; most of its time went to reading the
focused run's task rows and the listed runs again, on a machine whose cores the
runs it shows need. Both change far less often than builds come: a task's row
changes once, from pending to its final state, in the run's flushes (every
``store.flush-interval``); the listed runs change when a run starts or ends.
Each cache here tells that from a read a tenth the price, and reads anyway after
a while, so that a change it cannot see (retention, another writer) shows too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from dtf_core.service.views import storeread
from dtf_core.service.views.snapshot import TaskRow
from dtf_core.store import StoreReader

TASKS_TTL = 2.0  # s a running run's tasks are reused while the same ones are pending
RUNS_TTL = 5.0  # s the listed runs are reused while the runs in flight stay the same


class FocusedTasks:
    """``storeread.task_rows`` of the focused run, as ``storeread.snapshot``'s
    ``tasks_of``: read again when its pending tasks or its status changed (a
    finished run's rows no longer change), or after :data:`TASKS_TTL`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cached: tuple[float, tuple[Any, ...], list[TaskRow]] | None = None
        self.reads = 0  # full reads so far (the tests count them)

    def __call__(self, store: StoreReader, row: Mapping[str, Any]) -> list[TaskRow]:
        running = row["status"] == "running"
        pending = store.unfinished_tasks(row["run_id"]) if running else None
        mark = (row["run_id"], row["status"], pending)
        cached = self._cached
        same = cached is not None and cached[1] == mark
        if same and cached is not None and (not running or self.clock() - cached[0] < TASKS_TTL):
            return cached[2]
        found = storeread.task_rows(store, row["run_id"])
        self._cached, self.reads = (self.clock(), mark, found), self.reads + 1
        return found


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
