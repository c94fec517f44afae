"""``dtf-tui run``: the same run ``dtf-core run`` makes, in this process, with
the console as its view.

The Coordinator runs on a background thread (it owns the loop, the store and
the cluster, exactly as on the command line); its events land in a
:class:`~dtf_tui.sources.livestate.LiveState`. Worker metrics come from the
scheduler on each poll (:func:`~dtf_core.cluster.workermetrics.worker_metrics`,
which bounds its own wait).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from dtf_core.cluster.workermetrics import worker_metrics
from dtf_core.errors import DtfError
from dtf_core.service.views import storeread
from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot, SeriesKey, TrendSeries
from dtf_tui.sources import SourceError
from dtf_tui.sources.livestate import LiveState

if TYPE_CHECKING:
    from distributed import Client

    from dtf_core.cluster.embedded import WorkerPlan
    from dtf_core.events import Event
    from dtf_core.model import Suite
    from dtf_core.run.coordinator import Coordinator, RunResult
    from dtf_core.store import Store


class LiveSource:
    poll_interval = 1.0

    def __init__(
        self,
        *,
        suite: Suite | None = None,
        plans: list[WorkerPlan] | None = None,
        scheduler: str | None = None,
        db_path: str | None = None,
        unschedulable_timeout: float | None = None,
        client: Client | None = None,
        clock: Callable[[], float] = time.time,
        dashboard: str | None = None,
    ) -> None:
        """Run ``suite`` (on ``scheduler``, else an embedded cluster of ``plans``),
        or, with only ``client``, watch that cluster's workers."""
        self.suite = suite
        self.plans = plans
        self.scheduler = scheduler
        self.db_path = db_path
        self.unschedulable_timeout = unschedulable_timeout
        self._client = client
        self.dashboard = dashboard  # the address asked for; then the link Dask gave
        tasks = [(t.task_id, t.kind.value) for t in suite.tasks] if suite else []
        self.state = LiveState(tasks, clock=clock)
        if suite is not None:
            self.label = f"run: {suite.name} on {scheduler or 'embedded cluster'}"
        else:
            self.label = "cluster"
        self.result: RunResult | None = None
        self._store: Store | None = None
        self._coord: Coordinator | None = None
        self._failure = ""
        self._failure_exc: BaseException | None = None  # its traceback goes to the console's log
        self._event_error: BaseException | None = None  # the first event the view could not take
        self._event_error_told = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        if self.suite is None or self._thread is not None:
            return
        self.state.note = "starting the cluster"
        self._thread = threading.Thread(target=self._run, name="dtf-tui-run", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from dtf_core import context
        from dtf_core.cluster import embedded as cluster
        from dtf_core.run.coordinator import Coordinator
        from dtf_core.store import Store

        assert self.suite is not None and self.db_path is not None
        try:
            # A lock wait is shown in the console: Textual draws on stderr.
            with Store(self.db_path, on_wait=self._note) as store:
                self._store = store
                with cluster.open_cluster(
                    self.scheduler, plans=self.plans, dashboard=self.dashboard
                ) as handle:
                    self._client = handle.client
                    self.dashboard = handle.dashboard
                    self.state.note = ""
                    self._coord = Coordinator(
                        handle.client,
                        store,
                        embedded=handle.embedded,
                        unschedulable_timeout=self.unschedulable_timeout,
                        listeners=[self._on_event],
                    )
                    if not self._stop.is_set():
                        meta = context.collect(os.path.dirname(self.suite.path))
                        if handle.dashboard:  # the reports name it
                            meta["dashboard"] = handle.dashboard
                        self.result = self._coord.run(self.suite, metadata=meta)
                    # The view keeps the cluster and the store until it closes.
                    self._stop.wait()
                    self._client = None
        except DtfError as exc:
            self._failure, self._failure_exc = str(exc), exc
        except Exception as exc:  # the view must say why the run died, not hang
            self._failure = f"the run stopped: {type(exc).__name__}: {exc}"
            self._failure_exc = exc
        finally:
            self._store = None
            self._client = None

    def _on_event(self, event: Event) -> None:
        try:
            self.state.on_event(event)
        except Exception as exc:  # the coordinator swallows a listener's error: keep it
            if self._event_error is None:
                self._event_error = exc

    @property
    def finished(self) -> bool:
        return self.result is not None or bool(self._failure)

    def close(self) -> None:
        """Cancel a run still going (quitting the console stops its run) and wait for it."""
        if self._coord is not None and self.result is None:
            self._coord.cancel()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    # ---- Source --------------------------------------------------------------

    def poll(self) -> ClusterSnapshot:
        if self._failure:
            raise SourceError(self._failure) from self._failure_exc
        lost = self._event_error
        if lost is not None and not self._event_error_told:
            self._event_error_told = True  # raised once, for the log to get its traceback
            raise SourceError(f"a run event was lost: {type(lost).__name__}: {lost}") from lost
        client, problem = self._client, ""
        if client is not None:
            try:
                self.state.update_workers(worker_metrics(client))
            except Exception as exc:  # the coordinator itself rides out a scheduler outage
                problem = f"the scheduler does not answer ({type(exc).__name__}); retrying"
        if lost is not None and not problem:  # the run goes on; what is shown may lag behind it
            problem = f"a run event was lost ({type(lost).__name__}): tasks may show stale states"
        snap = replace(self.state.snapshot(self.label), dashboard=self.dashboard or "")
        return replace(snap, problem=problem) if problem else snap

    def _note(self, message: str) -> None:
        self.state.note = message

    def _need_store(self) -> Store:
        if self._store is None:
            raise SourceError("the run's database is not open")
        return self._store

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        # The coordinator's own Store: its lock makes reads from this thread safe.
        return storeread.attempts(self._need_store(), run_id, task_id)

    def series_keys(self) -> list[SeriesKey]:
        if self._store is None:
            return []
        return list(storeread.all_series(self._store))

    def series(self, key: SeriesKey) -> TrendSeries:
        found = storeread.all_series(self._need_store()).get(key)
        if found is None:
            raise SourceError(f"no benchmark history for {key.label}")
        return found
