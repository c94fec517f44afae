"""What a run does when its scheduler goes away (external clusters).

Dask cancels every in-flight future with ``scheduler-connection-lost`` at once;
its client reconnects by itself only within its own timeout. The coordinator
records those attempts without charging retry budgets, waits (re-creating the
client if it gave up), tells the new scheduler again what it must know (the
worker plugin, the event subscription) and resubmits what is unfinished.

A mixin of :class:`~dtf_core.run.coordinator.Coordinator`, kept apart so the run
loop reads without the recovery path; the attributes and methods it relies on
are declared below.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from distributed import Client

from dtf_core.cluster import embedded as cluster_mod
from dtf_core.errors import Category, ClusterError
from dtf_core.events import ClusterChanged, Event
from dtf_core.model import AttemptResult, TaskPayload
from dtf_core.run.state import TaskState, decided_attempt
from dtf_core.store import Store


class SchedulerRecovery:
    client: Client
    store: Store
    embedded: bool
    run_id: str
    states: dict[str, TaskState]
    scheduler_wait: float
    _down_since: float | None
    _address: str | None
    _workers: dict[str, dict[str, Any]]

    # Provided by the Coordinator.
    def _emit(self, event: Event) -> None:
        raise NotImplementedError

    def _register_plugins(self) -> None:
        raise NotImplementedError

    def _on_tests_event(self, event: tuple[float, Any]) -> None:
        raise NotImplementedError

    def _refresh_workers(self, force: bool = False) -> None:
        raise NotImplementedError

    def _finalize(
        self,
        st: TaskState,
        status: str,
        res: AttemptResult,
        *,
        flaky: bool = False,
        category: str | None = None,
        message: str | None = None,
    ) -> None:
        raise NotImplementedError

    def _connect_hooks(self) -> None:
        """What a (re)started scheduler must be told again."""
        self._register_plugins()
        # Running pytest tasks publish per-test counts as Dask events.
        self.client.subscribe_topic("dtf-tests", self._on_tests_event)

    def _scheduler_address(self) -> str | None:
        rpc = self.client.scheduler
        return str(rpc.address) if rpc is not None else None

    # ------------------------------------------------------ scheduler loss
    def _scheduler_lost(self, payloads: list[TaskPayload], message: str) -> None:
        """Futures were cancelled because the scheduler went away. Record the
        attempts, charge no retry budget, and resubmit once it is back."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._emit(ClusterChanged(self.run_id, "scheduler-lost", message))
        for p in payloads:
            st = self.states.get(p.spec.task_id)
            if st is None or st.final is not None or p.attempt != st.attempt:
                continue
            st.inflight = False
            self.store.add_attempt(
                decided_attempt(
                    self.run_id,
                    p.spec.task_id,
                    p.attempt,
                    "error",
                    Category.INFRASTRUCTURE,
                    f"{message}; resubmitted when the scheduler is back",
                )
            )
            st.waiting_since = time.monotonic()

    def _check_scheduler(self) -> None:
        assert self._down_since is not None
        down_for = time.monotonic() - self._down_since
        if down_for > self.scheduler_wait:
            self._give_up_on_scheduler(down_for)
            return
        if self.client.status in ("closed", "closing") and not self.embedded and self._address:
            # The client stops reconnecting after its own timeout: start a new one.
            with contextlib.suppress(Exception):
                self.client = Client(
                    self._address, timeout=2, set_as_default=False, security=self.client.security
                )
        if self.client.status != "running":
            return
        try:
            self._workers = cluster_mod.current_workers(self.client, timeout=2)
        except ClusterError:
            return
        self._down_since = None
        with contextlib.suppress(Exception):
            self._connect_hooks()
        waiting = [s for s in self.states.values() if s.final is None and s.waiting_since]
        for st in waiting:
            st.waiting_since = time.monotonic()  # the unschedulable clock starts now
        self._emit(
            ClusterChanged(
                self.run_id, "scheduler-back",
                f"scheduler back after {down_for:.1f}s; resubmitting {len(waiting)} task(s)",
            )
        )  # fmt: skip
        self._refresh_workers(force=True)

    def _give_up_on_scheduler(self, down_for: float) -> None:
        for st in self.states.values():
            if st.final is not None:
                continue
            st.attempt += 1
            res = decided_attempt(
                self.run_id,
                st.spec.task_id,
                st.attempt,
                "error",
                Category.INFRASTRUCTURE,
                f"the scheduler did not come back within {down_for:.0f}s",
            )
            self.store.add_attempt(res)
            self._finalize(st, "failed", res, category=res.category)
