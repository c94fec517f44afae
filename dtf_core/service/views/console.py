"""What ``dtf-core serve`` sends to attached consoles: one snapshot for all of
them, published when something changed, and a change counter they follow
instead of polling.

Why publish, and not build per request: twenty consoles must cost the service
what one does, and a request must never wait on the database. The snapshot is
built by the same code as the console's local database source
(:func:`~dtf_core.service.views.storeread.snapshot`), with the live cluster laid
over it (workers' CPU and memory, the totals of runs in flight), on a worker
thread, at most once every :data:`MIN_BUILD_GAP`, and only while a console
watches (and at most a quarter of the time: :data:`BUILD_GAP_FACTOR`).
A change (any run event, a submission) schedules a build; when it is
done and shows something new (most events change nothing a console shows until
the run's next flush reaches the database), it is published: written to every
console stream (``/v1/console/stream``: the rows changed since the build before,
:mod:`~dtf_core.service.views.delta`), and its generation to ``/v1/changes``
for clients that then ask ``/v1/console``. A burst of events is one build, and
one refresh per console.

The event loop is the only place the published snapshot and the building
future are touched; run threads only bump the counter and schedule a wake-up.
Errors of finished runs never change: they are read once and kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from tornado.ioloop import IOLoop
from tornado.locks import Condition

from dtf_core.cluster.workermetrics import identity_metrics
from dtf_core.service.runmanager import RunManager
from dtf_core.service.views import storeread
from dtf_core.service.views.delta import Build, Publisher
from dtf_core.service.views.readcache import FocusedTasks, ListedRuns, RecordedWorkers
from dtf_core.service.views.snapshot import (
    ClusterSnapshot,
    ErrorEvent,
    SeriesKey,
    TrendSeries,
    WorkerInfo,
)

MIN_BUILD_GAP = 0.1  # s between two snapshot builds, however many consoles ask
# ... and at least this many times the last build's duration: a slow build (a big
# run, a busy machine) must not take the CPU the runs it shows need.
BUILD_GAP_FACTOR = 3.0
MAX_AGE = 1.0  # s before a request also schedules a rebuild (worker CPU moves on its own)
# s after the last console request during which changes trigger builds: a
# console that polls asks every second; one that waits (a stream, a long-poll)
# counts while it waits (``watching``). Not longer: with no console attached,
# a run must not pay for builds nobody reads.
INTEREST_S = 5.0
SAMPLE_GAP = 1.0  # s between two CPU/memory samples kept per worker
HISTORY = 30  # samples kept per worker, as the local console keeps
SERIES_TTL = 5.0  # s the benchmark series are reused while a run is in flight
RUNS = 20  # runs in a snapshot, as the local console shows


class ConsoleFeed:
    def __init__(self, manager: RunManager, *, clock: Callable[[], float] = time.time) -> None:
        self.manager = manager
        self.clock = clock
        # A new service numbers its changes afresh: consoles that see another
        # epoch (a restart, a standby that took over) start counting again.
        self.epoch = secrets.token_hex(4)
        self.generation = 0
        self._count_lock = threading.Lock()
        self._loop: IOLoop | None = None
        self._cond: Condition | None = None
        self._built: Build | None = None  # the published build
        self._covered = 0  # the newest generation a build has taken in (published or not)
        self._built_at = 0.0  # monotonic: the last build, published or not
        self._published_at = 0.0  # monotonic: the last build published
        self._build_s = 0.0  # how long the last build took
        self._building: asyncio.Future[Build] | None = None
        self._publisher = Publisher()  # the builder's thread only
        self._history: dict[str, tuple[deque[float], deque[float]]] = {}
        self._sampled_at = 0.0
        self._interest = 0.0  # monotonic: the last console request
        self._watching = 0  # streams and long-polls waiting now (the loop's thread)
        self._wake_pending = False  # a wake-up is on its way to the loop (under _count_lock)
        self._errors: dict[str, list[ErrorEvent]] = {}  # finished runs' errors
        # The builder's thread only: reads reused while they cannot have changed.
        self._tasks, self._listed = FocusedTasks(), ListedRuns(RUNS)
        self._recorded = RecordedWorkers()
        self._series: tuple[object, float, dict[SeriesKey, TrendSeries]] | None = None
        self._series_lock = threading.Lock()
        # Its own thread: a build never waits behind the API's reads or reports.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dtf-console")
        manager.on_change.append(self.changed)  # run events, submissions, flushes

    # ---- changes -------------------------------------------------------------------

    def bind(self) -> Condition:
        """On the loop: the condition waiters wait on (made on first use)."""
        if self._cond is None:
            self._loop, self._cond = IOLoop.current(), Condition()
        return self._cond

    def changed(self) -> None:
        """Any thread: something consoles show changed (every run event).

        The loop hears of it only when a console is watching, and once until it
        has acted on it: a run emits thousands of events a second, and each
        ``add_callback`` from another thread is a write to the loop's wake-up
        pipe, paid on the run's thread."""
        with self._count_lock:
            self.generation += 1
            loop = self._loop
            if loop is None or self._wake_pending or not self._interested():
                return
            self._wake_pending = True
        loop.add_callback(self._on_change)

    def _interested(self) -> bool:
        return bool(self._watching) or time.monotonic() - self._interest < INTEREST_S

    def _on_change(self) -> None:
        with self._count_lock:
            self._wake_pending = False  # a change from now on wakes the loop again
        if self._interested():
            self._schedule()

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """On the loop: a console waits on this service (a stream, a long-poll);
        changes are built while it does."""
        self._watching += 1
        try:
            yield
        finally:
            self._watching -= 1

    def mark(self) -> dict[str, Any]:
        built = self._built
        return {"generation": built.generation if built else 0, "epoch": self.epoch}

    async def wait_change(self, after: int, timeout: float) -> dict[str, Any]:
        """Return as soon as a snapshot newer than ``after`` is published, or after
        ``timeout`` s."""
        cond = self.bind()
        self._interest = time.monotonic()
        if self._built is None or self.generation > self._covered:
            self._schedule()
        deadline = time.monotonic() + timeout
        with self.watching():
            while self.mark()["generation"] <= after:
                left = deadline - time.monotonic()
                if left <= 0 or not await cond.wait(timeout=IOLoop.current().time() + left):
                    break
        return self.mark()

    async def next_build(self, after: int, epoch: str, timeout: float) -> Build | None:
        """The published build newer than build ``after`` of ``epoch`` (any build
        when that epoch is not this service's), as soon as there is one; None
        after ``timeout`` s. What a console stream (``/v1/console/stream``) waits
        on: while one waits, changes are built as for a console that asks, and a
        build older than :data:`MAX_AGE` is redone (workers' CPU moves on its own)."""
        cond = self.bind()
        deadline = time.monotonic() + timeout
        while True:
            self._interest = time.monotonic()
            built = self._built
            if built is not None and (built.epoch != epoch or built.serial > after):
                return built
            stale = time.monotonic() - self._built_at > MAX_AGE
            if built is None or self.generation > self._covered or stale:
                self._schedule()
            left = deadline - time.monotonic()
            if left <= 0 or not await cond.wait(timeout=IOLoop.current().time() + left):
                return None

    # ---- the snapshot --------------------------------------------------------------

    async def snapshot_body(self, want: int = 0, since: int = 0, epoch: str = "") -> bytes:
        """The published snapshot as JSON bytes: at once when it reflects change
        ``want`` (what ``/v1/changes`` announced; 0: every change so far), else
        after the next build; only what changed after generation ``since`` of
        ``epoch`` when that is right and worth it (:meth:`Build.body`)."""
        return (await self.published(want)).body(since, epoch)

    async def published(self, want: int = 0) -> Build:
        """The newest build, once it reflects change ``want``."""
        self.bind()
        self._interest = time.monotonic()
        built = self._built
        # No generation asked (a one-off reader): the newest state, built if need be.
        target = min(want, self.generation) if want > 0 else self.generation
        if built is not None and self._covered >= target:
            if self._covered < self.generation or time.monotonic() - self._built_at > MAX_AGE:
                self._schedule()  # the next request gets a fresher one
            return built
        building = self._schedule()
        return await asyncio.shield(building)

    def _schedule(self) -> asyncio.Future[Build]:
        if self._building is None:
            rest = max(MIN_BUILD_GAP, BUILD_GAP_FACTOR * self._build_s)
            gap = self._built_at + rest - time.monotonic() if self._built else 0.0
            self._building = asyncio.ensure_future(self._build(gap))
        return self._building

    async def _build(self, gap: float) -> Build:
        try:
            if gap > 0:
                await asyncio.sleep(gap)
            generation = self.generation
            started = time.monotonic()
            built = await asyncio.wrap_future(self._pool.submit(self._publish, generation))
            self._build_s = time.monotonic() - started
            self._built_at, self._covered = time.monotonic(), generation
            if built is None:  # nothing new to show: no console is woken for it
                assert self._built is not None
                return self._built
            self._built, self._published_at = built, time.monotonic()
            self.bind().notify_all()
            return built
        finally:
            self._building = None
            if self._built is not None and self.generation > self._covered:
                self._on_change()  # changes while it was built: one more, after the gap

    def _publish(self, generation: int) -> Build | None:
        # The workers' CPU and running tasks move on every build during a run:
        # they ride along with the run's flushes, else go out once a second.
        due = time.monotonic() - self._published_at >= MAX_AGE
        return self._publisher.build(self.build(), generation, self.epoch, due)

    def _errors_of(
        self, store: Any, row: Mapping[str, Any], hardware: Mapping[str, str] | None
    ) -> list[ErrorEvent]:
        """A run's errors; a finished run's from the cache (they no longer change)."""
        run_id = row["run_id"]
        cached = self._errors.get(run_id)
        if cached is not None:
            return cached
        found = storeread.errors(store, run_id, hardware)
        if row["status"] != "running":
            self._errors[run_id] = found
        return found

    def build(self, label: str = "dtf-core serve") -> ClusterSnapshot:
        """Worker thread: the Store's view of the newest runs, with the cluster's."""
        now = self.clock()
        store = self.manager.store
        running = {r.run_id for r in self.manager.active() if r.status == "running"}
        rows = self._listed(store, running)
        snap = storeread.snapshot(
            store, label, now, RUNS, self._errors_of, rows, self._tasks, self._recorded
        )
        listed = {r.run_id for r in snap.runs}
        for gone in [k for k in self._errors if k not in listed]:
            del self._errors[gone]
        runs = tuple(self._with_live_total(r) for r in snap.runs)
        recorded = {w.address: w for w in snap.workers}
        problem = ""
        try:
            seen = identity_metrics(self.manager.client)
        except Exception as exc:  # the runs ride out a scheduler outage; so does the view
            workers = snap.workers
            problem = f"the scheduler does not answer ({type(exc).__name__}); retrying"
        else:
            workers = self._live_workers(seen, recorded)
        return replace(
            snap,
            runs=runs,
            workers=workers,
            throughput=sum(r.throughput(now) for r in runs if r.in_flight),
            problem=problem,
        )

    def _with_live_total(self, run: Any) -> Any:
        active = self.manager.get(run.run_id)
        if active is None or not run.in_flight or run.total or not active.total:
            return run
        return replace(run, total=active.total)

    def _live_workers(
        self, seen: list[dict[str, Any]], recorded: dict[str, WorkerInfo]
    ) -> tuple[WorkerInfo, ...]:
        now = time.monotonic()
        sample = now - self._sampled_at >= SAMPLE_GAP
        if sample:
            self._sampled_at = now
        out = []
        for w in seen:
            cpu, mem = self._history.setdefault(
                w["address"], (deque(maxlen=HISTORY), deque(maxlen=HISTORY))
            )
            if sample or not cpu:
                cpu.append(float(w.get("cpu") or 0.0))
                mem.append(float(w.get("memory") or 0.0))
            old = recorded.get(w["address"])
            # The health its run judged, as the local console shows it from the file.
            judged = (old.health, old.health_reason) if old else ("", "")
            out.append(storeread.live_worker(w, cpu, mem, old.hardware if old else "", judged))
        return tuple(sorted(out, key=lambda w: (w.name, w.address)))

    # ---- benchmark history -----------------------------------------------------------

    def all_series(self) -> dict[SeriesKey, TrendSeries]:
        """Worker thread: every benchmark series, rebuilt when a run starts or
        ends, and every :data:`SERIES_TTL` while one is in flight."""
        store = self.manager.store
        with self._series_lock:
            marker = (store.latest_run_id(), len(self.manager.active()))
            cached = self._series
            fresh = cached is not None and cached[0] == marker
            if fresh and marker[1] and cached is not None:
                fresh = time.monotonic() - cached[1] < SERIES_TTL
            if not fresh or cached is None:
                cached = (marker, time.monotonic(), storeread.all_series(store))
                self._series = cached
            return cached[2]
