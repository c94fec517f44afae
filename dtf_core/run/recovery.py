"""What a run does when its scheduler goes away (external clusters).

Dask cancels every in-flight future with ``scheduler-connection-lost`` at once;
its client reconnects by itself only within its own timeout. The run records
those attempts without charging retry budgets, waits (re-creating the client
if it gave up), tells the new scheduler again what it must know (the worker
plugin, the event subscription) and resubmits what is unfinished; after
``dtf.scheduler-wait`` it gives up and fails what is left.

A part the :class:`~dtf_core.run.coordinator.Coordinator` owns, one per run,
given explicitly what it needs (the store, the run's task states, its view of
the workers, and callbacks to emit, end a task and reconnect). The client stays
the loop's: :meth:`SchedulerRecovery.poll` hands back the one to go on with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from distributed import Client

from dtf_core.errors import Category
from dtf_core.events import ClusterChanged, Event
from dtf_core.model import TaskPayload
from dtf_core.run.state import TaskState, decided_attempt
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store

log = logging.getLogger(__name__)

# end(state, status, category, message): end a task with an attempt the run
# loop decided itself (stored and announced).
End = Callable[[TaskState, str, Category, str], None]


class SchedulerRecovery:
    def __init__(
        self,
        run_id: str,
        states: dict[str, TaskState],
        store: Store,
        workers: WorkerView,
        *,
        emit: Callable[[Event], None],
        end: End,
        connect: Callable[[Client], None],
        address: str | None,
        embedded: bool,
        wait: float,
    ) -> None:
        self._run_id = run_id
        self._states = states
        self._store = store
        self._workers = workers
        self._emit = emit
        self._end = end
        self._connect = connect  # what a (re)started scheduler must be told again
        self._address = address  # where to connect a new client
        self._embedded = embedded
        self._wait = wait  # seconds to wait for the scheduler before giving up
        self.down_since: float | None = None  # the scheduler is gone since then

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def lost(self, payloads: list[TaskPayload], message: str) -> None:
        """Futures were cancelled because the scheduler went away. Record the
        attempts, charge no retry budget, and resubmit once it is back."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            self._emit(ClusterChanged(self._run_id, "scheduler-lost", message))
        for p in payloads:
            st = self._states.get(p.spec.task_id)
            if st is None or st.final is not None or p.attempt != st.attempt:
                continue
            st.inflight = False
            self._store.add_attempt(
                decided_attempt(
                    self._run_id,
                    p.spec.task_id,
                    p.attempt,
                    "error",
                    Category.INFRASTRUCTURE,
                    f"{message}; resubmitted when the scheduler is back",
                )
            )
            st.waiting_since = time.monotonic()

    def poll(self, client: Client) -> Client:
        """While the scheduler is gone: check whether it is back. Answers the
        client to go on with (a new one if the old one gave up reconnecting)."""
        assert self.down_since is not None
        down_for = time.monotonic() - self.down_since
        if down_for > self._wait:
            self._give_up(down_for)
            return client
        if client.status in ("closed", "closing") and not self._embedded and self._address:
            # The client stops reconnecting after its own timeout: start a new one.
            try:
                client = Client(
                    self._address, timeout=2, set_as_default=False, security=client.security
                )
            except Exception:
                log.debug("the scheduler at %s is not back yet", self._address, exc_info=True)
        if client.status != "running" or not self._workers.probe(client, timeout=2):
            return client
        self.down_since = None
        try:
            self._connect(client)
        except Exception:
            log.debug("telling the new scheduler what it must know failed", exc_info=True)
        waiting = [s for s in self._states.values() if s.final is None and s.waiting_since]
        for st in waiting:
            st.waiting_since = time.monotonic()  # the unschedulable clock starts now
        self._emit(
            ClusterChanged(
                self._run_id, "scheduler-back",
                f"scheduler back after {down_for:.1f}s; resubmitting {len(waiting)} task(s)",
            )
        )  # fmt: skip
        self._workers.refresh(client, force=True)
        return client

    def _give_up(self, down_for: float) -> None:
        for st in self._states.values():
            if st.final is not None:
                continue
            st.attempt += 1
            message = f"the scheduler did not come back within {down_for:.0f}s"
            self._end(st, "failed", Category.INFRASTRUCTURE, message)
