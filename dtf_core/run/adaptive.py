"""Worker health and straggler mitigation, as one part of the run loop.

The :class:`~dtf_core.run.coordinator.Coordinator` owns one :class:`Adaptive`
per run and calls it at four points: when it (re)connects to a scheduler
(:meth:`connect`: the worker plugin that samples health, the subscription to
``dtf-started``), on each turn of its loop (:meth:`tick`), with the results
of each finished Dask task (:meth:`arbitrate`: speculative races are settled
here, every result is shown to the health monitor) and at the end (:meth:`close`).
Inside, the :class:`~dtf_core.run.monitor.HealthMonitor` and the
:class:`~dtf_core.run.speculation.Speculator` share what both need: which
Dask task started where and when, the scheduler's placement (asked once per
turn, only when something calls for it) and the keys placed on purpose.

Start events reach the client on its own event loop: they are queued there
and folded in on the loop thread, like every other decision.
"""

from __future__ import annotations

import logging
import queue
import re
import time
from collections.abc import Callable
from typing import Any

from distributed import Client

from dtf_core import config
from dtf_core.cluster import embedded as cluster_mod
from dtf_core.errors import ClusterError, StoreError
from dtf_core.events import Event
from dtf_core.model import AttemptResult, TaskPayload
from dtf_core.run import topics
from dtf_core.run.monitor import REHOME_PER_LOOK, HealthMonitor, Started
from dtf_core.run.pace import Pace
from dtf_core.run.speculation import Copy, Speculator
from dtf_core.run.state import TaskState
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store
from dtf_core.worker.health import STARTED_TOPIC, HealthSampler

log = logging.getLogger(__name__)

# send(key, payloads, workers): submit payloads as Dask task ``key`` (coordinator._send).
Send = Callable[[str, list[TaskPayload], list[str] | None], None]
_MOVED = re.compile(r"-m\d+$")


class Adaptive:
    def __init__(
        self,
        run_id: str,
        states: dict[str, TaskState],
        store: Store,
        workers: WorkerView,
        *,
        inflight: dict[str, tuple[Any, list[TaskPayload]]],
        client: Callable[[], Client],
        copy: Copy,
        send: Send,
        key_of: Callable[[str, int], str | None],
        emit: Callable[[Event], None],
        speculation: tuple[bool | None, ...],
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._run_id = run_id
        self._view = workers
        self._inflight = inflight  # the run loop's own dict
        self._client = client
        self._send = send
        self._stopping = stopping  # --maxfail reached: nothing new starts, not even a copy
        self._started: dict[str, Started] = {}
        self._arrived: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seq = 0
        self._pinned: set[str] = set()
        self._health_at = self._spec_at = -1e9
        self._health_every = config.seconds("health.interval")
        self._spec_every = config.seconds("speculation.interval")
        pending = [t for t, s in states.items() if s.final is None]
        try:
            store.prune_health(time.time(), config.seconds("health.downsample-after"),
                               config.seconds("health.retain"))  # fmt: skip
            history = store.task_durations(pending)
        except Exception:  # health is worth having, never worth failing a run for
            log.warning("reading worker health history failed", exc_info=True)
            history = None
        self.pace = Pace(history)
        self.monitor = HealthMonitor(
            run_id, states, store, workers, self.pace, emit=emit, publish=self._publish,
            move=self._move, pinned=self._pinned,
        )  # fmt: skip
        self.speculator = Speculator(
            run_id, states, store, self.pace, workers, self.monitor, copy=copy, move=self._move,
            key_of=key_of,
            cancel=self._cancel, emit=emit, pinned=self._pinned,
            enabled=next((c for c in speculation if c is not None),
                         bool(config.get("speculation.enabled"))),
        )  # fmt: skip

    # ---- the coordinator's calls -----------------------------------------------

    def connect(self, client: Client) -> None:
        """What a (re)started scheduler must be told (a failure here is the caller's)."""
        client.register_plugin(HealthSampler(), name="dtf-health")
        topics.route(client, STARTED_TOPIC, self._run_id, self._arrived.put)

    def tick(self, urgent: bool = False) -> None:
        now = time.monotonic()
        self._fold_started(now)
        health = urgent or now - self._health_at >= self._health_every
        spec = not urgent and self.speculator.enabled and now - self._spec_at >= self._spec_every
        spec = spec and not self._stopping()
        if not health and not spec:
            return
        asked: list[dict[str, list[str]] | None] = []

        def processing() -> dict[str, list[str]] | None:
            if not asked:  # once per turn, and only when someone needs it
                try:
                    asked.append(cluster_mod.processing(self._client(), timeout=2.0))
                except ClusterError:
                    log.debug("the scheduler did not say what its workers run", exc_info=True)
                    asked.append(None)
            return asked[0]

        if health:
            self._health_at = now
            self._view.refresh(self._client())
            self._unstrand()
            self.monitor.tick(now, self._started, self._inflight, processing)
        if spec:
            self._spec_at = now
            self.speculator.tick(now, self._started, self._inflight, processing)

    def arbitrate(self, key: str, results: list[AttemptResult]) -> list[AttemptResult]:
        """The results of finished Dask task ``key`` the run loop goes on with."""
        s = self._started.get(key)  # before folding: the loop no longer holds ``key``
        self._fold_started(time.monotonic())
        for res in results:
            self.monitor.note_result(res, res.worker or (s.worker if s else ""))
        out = self.speculator.arbitrate(key, results, self._started, self._inflight)
        self._started.pop(key, None)
        if self.monitor.urgent:
            self.tick(urgent=True)
        return out

    def accepts(self, res: AttemptResult) -> bool:
        """An attempt that is not the task's latest and still counts (a race's winner)."""
        return self.speculator.accepts(res)

    def close(self) -> None:
        try:
            self.monitor.close()
        except StoreError:
            # The database is failing (a full disk, say): the run reports that
            # once, as its one error line; this write is display data.
            log.debug("storing the workers' last health rows failed", exc_info=True)
        except Exception:
            log.warning("storing the workers' last health rows failed", exc_info=True)
        topics.unroute(self._client(), STARTED_TOPIC, self._run_id)

    # ---- for the parts ---------------------------------------------------------

    def _fold_started(self, now: float) -> None:
        while True:
            try:
                msg = self._arrived.get_nowait()
            except queue.Empty:
                break
            key = str(msg.get("key", ""))
            if key in self._inflight:
                worker, address = str(msg.get("name", "")), str(msg.get("address", ""))
                self._started[key] = Started(worker, address, now)
        for key in [k for k in self._started if k not in self._inflight]:
            del self._started[key]

    def _cancel(self, key: str) -> None:
        entry = self._inflight.pop(key, None)
        if entry is None:
            return
        try:
            self._client().cancel([entry[0]], force=True)
        except Exception:
            log.debug("cancelling %s failed", key, exc_info=True)

    def _move(self, key: str, workers: list[str] | None) -> str | None:
        """Submit the Dask task ``key`` again under a new key, same attempt,
        restricted to ``workers``; it had not started (a race is harmless: the
        cancelled one's process group is killed and its result never read)."""
        entry = self._inflight.get(key)
        if entry is None:
            return None
        self._cancel(key)
        self._seq += 1
        new = f"{_MOVED.sub('', key)}-m{self._seq}"
        self._send(new, entry[1], workers)
        return new

    def _unstrand(self) -> None:
        """Tasks held to workers that have all left go where placement says now
        (same attempt, new key), pinned or not: a probation on a worker that
        left has failed. A speculative copy stays: its twin goes on regardless."""
        copies = {pair.copy.key for pair in self.speculator.pairs.values()}
        for key in self._view.stranded(self._inflight)[:REHOME_PER_LOOK]:  # the rest next time
            if key in copies or key not in self._inflight:
                continue
            payloads = self._inflight[key][1]
            del self._view.held[key]
            self._pinned.discard(key)
            for p in payloads:
                self.monitor.stranded(p.spec.task_id, p.attempt)
            new = self._move(key, self._view.placement(payloads[0].spec.requires))
            log.info("%s was held to workers that left the cluster; now %s", key, new)

    def _publish(self, worker: str, value: dict[str, Any]) -> None:
        cluster_mod.publish_health(self._client(), worker, value)
