"""Tasks of a run that wait to run again: retries due after their backoff, and
tasks that wait for a worker able to run them.

A retry whose time has come goes to Dask only if some trusted worker has the
resources it needs (Dask would otherwise keep it waiting forever); if none has,
it joins the tasks waiting for a capable worker, which end as ``unschedulable``
after ``unschedulable-timeout`` (:meth:`WaitingTasks.expire`).

A part the :class:`~dtf_core.run.coordinator.Coordinator` owns, one per run,
given the run's task states, its view of the workers and callbacks to refresh
that view and to submit.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

from dtf_core.errors import Category
from dtf_core.run.decisions import waited_too_long
from dtf_core.run.state import Submit, TaskState
from dtf_core.run.workers import WorkerView


class WaitingTasks:
    def __init__(
        self,
        states: dict[str, TaskState],
        workers: WorkerView,
        *,
        refresh: Callable[[], None],
        submit: Submit,
    ) -> None:
        self._states = states
        self._workers = workers
        self._refresh = refresh  # ask the scheduler for its workers now
        self._submit = submit
        self._due: list[tuple[float, int, str]] = []  # (monotonic due time, seq, task id)
        self._seq = itertools.count()

    def retry_after(self, task_id: str, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), task_id))

    def any_waiting(self) -> bool:
        """Whether some task waits for a capable worker."""
        return any(s.waiting_since is not None for s in self._states.values())

    def submit_due(self) -> None:
        """Submit the retries whose backoff is over, where a worker can run them."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, _, task_id = heapq.heappop(self._due)
            st = self._states[task_id]
            if st.final is not None:
                continue
            if not self._workers.capable(st.spec.requires):
                self._refresh()
            if self._workers.capable(st.spec.requires):
                self._submit([st], st.retry_nodeids)
            else:
                st.waiting_since = time.monotonic()

    def submit_ready(self) -> None:
        """Submit the waiting tasks some worker can run now."""
        for st in self._states.values():
            if (
                st.waiting_since is not None
                and st.final is None
                and self._workers.capable(st.spec.requires)
            ):
                self._submit([st], st.retry_nodeids)

    def expire(self, timeout: float, end: Callable[..., None]) -> None:
        """End as ``unschedulable`` (through the run loop's ``end``, announced)
        the tasks that waited ``timeout`` seconds for a capable worker."""
        now = time.monotonic()
        for st in self._states.values():
            if not waited_too_long(st, now, timeout):
                continue
            st.attempt += 1
            st.waiting_since = None
            message = self._workers.no_worker_message(st.spec.requires)
            end(st, "unschedulable", Category.UNSCHEDULABLE, message, announce=True)
