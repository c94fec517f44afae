"""Attach to a ``dtf-core serve`` coordinator through its HTTP API
(:class:`dtf_core.service.client.CoordinatorClient`).

The service builds the console's snapshot with the same code as the local
database source (:mod:`dtf_core.service.views`) and sends it whole from
``/v1/console`` (after the first, only the rows changed since the snapshot
held: ``?since=``, merged here by :func:`wire.apply_delta`); attempts with their
output come from ``/v1/runs/{id}/attempts``
and benchmark history from ``/v1/benchmarks``. So every screen shows attached
what it shows locally. ``/v1/coordinator`` says who leads (the header).

Push, not poll: :meth:`HttpSource.start` holds ``/v1/console/stream`` open on a
thread of its own; each event (the delta from the build before) is merged into
the snapshot held, and the console is woken (:meth:`subscribe`). Its polls then
return that snapshot and send no request: a published build costs the service
one write per console, however many are attached. The console refreshes at most
every ``MIN_POLL_GAP`` (:mod:`dtf_tui.app`). While the stream is down (being
reconnected), a poll asks ``/v1/console?since=`` itself; a service without the
stream (404) is followed through ``/v1/changes`` (a long-poll that returns as
soon as a run moves), a poll then asking for the snapshot.

An older service without these routes (404 "no endpoint") still works: the
snapshot is assembled from ``/v1/workers``, ``/v1/runs`` and each run's
``/tasks`` and ``/errors`` as before, the console polls on a timer, and the
task drill-down and the Trends screen say in a line what the service lacks.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dtf_core.errors import DtfError, OptionError
from dtf_core.service.client import CoordinatorClient, EndpointMissingError
from dtf_core.service.views import storeread, wire
from dtf_tui.snapshot import AttemptInfo, ClusterSnapshot, CoordinatorInfo, SeriesKey, TrendSeries
from dtf_tui.sources import SourceError
from dtf_tui.sources.livestate import LiveState

ERRORS_RUNS = 5  # runs whose errors are read each poll (the newest ones), older services
FOLLOW_GAP = 0.1  # s between two long-polls of /v1/changes: one wake-up per burst
SPREAD = 0.08  # s at most a console waits after a change before it asks (see _follow)
FOLLOW_WAIT = 25.0  # s one long-poll waits
STREAM_IDLE = 20.0  # s without a line before the stream counts as broken (keep-alive: 15)
RETRY_NEW_API = 30.0  # s before an older service is asked again for /v1/console
# s the coordinator's description is reused while the same process answers (the
# same URL and epoch): leadership moving changes one of them at once, standbys
# coming and going show within this. Asked on every poll, it was half of a
# console's requests.
COORDINATOR_TTL = 5.0
logger = logging.getLogger("dtf.tui")


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
        self._args = (url, token, timeout, ca_file, insecure)
        self._workers = LiveState(clock=clock)  # an older service: CPU/memory history here
        self._has_coordinator_route = True
        self._legacy_until = 0.0  # monotonic: until then, the older service's routes
        self._seen = 0  # the newest change the follower saw
        self._epoch = ""
        # The last snapshot from /v1/console as sent (before the header's
        # additions), its epoch and build number: what the next delta applies to
        # (an older service numbers no builds: 0, never a delta).
        self._held: tuple[str, int, ClusterSnapshot] | None = None
        # True while the follower's stream keeps ``_held`` up to date (then a
        # poll reads it and sends nothing); the lock orders the two writers.
        self._streaming = False
        self._held_lock = threading.Lock()
        # (monotonic, URL, epoch) of the last /v1/coordinator answer, and what it said
        self._described: tuple[float, str, str] = (0.0, "", "")
        self._description: tuple[CoordinatorInfo | None, str] = (None, "")
        self._wakes: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.changes_seen = 0  # wake-ups sent (the benchmark counts them)

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` (from the follower thread) when the service says something changed."""
        self._wakes.append(wake)

    def start(self) -> None:
        if self._follower is None:
            self._follower = threading.Thread(
                target=self._follow, name="dtf-tui-follow", daemon=True
            )
            self._follower.start()

    def close(self) -> None:
        self._stop.set()  # the follower ends after its long-poll (a daemon thread)

    @property
    def following(self) -> bool:
        return self._follower is not None and self._follower.is_alive()

    def _follow(self) -> None:
        url, token, timeout, ca_file, insecure = self._args
        # Its own client: the stream must not share the poll's connection state.
        client = CoordinatorClient(
            url, token, timeout=timeout, failover_wait=0.0, ca_file=ca_file, insecure=insecure
        )
        failures = 0
        while not self._stop.is_set():
            try:
                self._stream(client)
                failures = 0  # the service ended it (a restart, an expired token)
            except EndpointMissingError:
                break  # an older service: the change counter's long-poll
            except DtfError as exc:
                failures += 1
                logger.debug("console stream from %s: %s", url, exc)
            finally:
                self._streaming = False
            self._stop.wait(min(10.0, 0.5 * 2**failures))
        self._follow_changes(client)

    def _stream(self, client: CoordinatorClient) -> None:
        """Hold the snapshot the service pushes (``/v1/console/stream``): each
        event merged into the one held, the console woken; its polls then read
        the held one and send no request."""
        held = self._held
        since, epoch = (held[1], held[0]) if held else (0, "")
        for data in client.console_stream(since, epoch, STREAM_IDLE + client.timeout):
            if self._stop.is_set():
                return
            snap = None
            if "delta" not in data:
                snap = wire.snapshot(data)
            elif held is not None and data["delta"] == held[1]:
                try:
                    snap = wire.apply_delta(held[2], data)
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    logger.debug("a delta from %s did not apply (%s)", self.url, exc)
            if snap is None:  # reconnect without a base: the first event is whole
                with self._held_lock:
                    self._held, self._streaming = None, False
                return
            held = (str(data.get("epoch") or ""), int(data.get("build") or 0), snap)
            with self._held_lock:
                self._held, self._streaming = held, True
            self._epoch, self._seen = held[0], max(self._seen, int(data.get("generation") or 0))
            self.changes_seen += 1
            for wake in self._wakes:
                wake()

    def _follow_changes(self, client: CoordinatorClient) -> None:
        """A service without the stream: long-poll its change counter and wake the
        console, which then asks for the snapshot."""
        failures = 0
        while not self._stop.is_set():
            try:
                mark = client.changes(self._seen, FOLLOW_WAIT)
            except EndpointMissingError:
                return  # an older service: the console's timer polls instead
            except DtfError as exc:
                failures += 1
                logger.debug("following %s: %s", self.url, exc)
                self._stop.wait(min(10.0, 0.5 * 2**failures))
                continue
            failures = 0
            generation, epoch = int(mark.get("generation") or 0), str(mark.get("epoch") or "")
            spread = 0.0
            if epoch != self._epoch or generation > self._seen:
                # Every console hears of a change at the same instant: each waits a
                # moment of its own before it asks, so that the service answers them
                # one after another instead of all at once, behind each other.
                spread = random.uniform(0.0, SPREAD)
                self._stop.wait(spread)
                self._epoch, self._seen = epoch, generation
                self.changes_seen += 1
                for wake in self._wakes:
                    wake()
            self._stop.wait(max(0.0, FOLLOW_GAP - spread))

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except DtfError as exc:  # AuthError, ServiceError, RunNotFoundError ...
            raise SourceError(str(exc)) from exc

    def poll(self) -> ClusterSnapshot:
        if time.monotonic() >= self._legacy_until:
            try:
                held = self._held
                snap = held[2] if self._streaming and held else self._console()
            except SourceError as exc:
                if not isinstance(exc.__cause__, EndpointMissingError):
                    raise
                self._legacy_until = time.monotonic() + RETRY_NEW_API
            else:
                coordinator, dashboard = self._coordinator()
                return replace(
                    snap,
                    source=self.label,
                    coordinator=coordinator,
                    dashboard=dashboard or snap.dashboard,
                )
        return self._legacy_poll()

    def _console(self) -> ClusterSnapshot:
        """The service's snapshot: the changes since the one held, merged into it,
        or a whole one (the first, after a restart, or when it fell behind)."""
        held = self._held
        since, epoch = (held[1], held[0]) if held else (0, "")
        data = self._call(self.client.console, self._seen, since, epoch)
        snap = None
        if "delta" in data and held is not None and data["delta"] == since:
            try:
                snap = wire.apply_delta(held[2], data)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                logger.debug("a delta from %s did not apply (%s): a whole one", self.url, exc)
        elif "delta" not in data:
            snap = wire.snapshot(data)
        if snap is None:  # a delta for another base: ask for everything
            data = self._call(self.client.console, self._seen)
            snap = wire.snapshot(data)
        with self._held_lock:  # the stream's, once it flows, is newer
            if not self._streaming:
                self._held = (str(data.get("epoch") or ""), int(data.get("build") or 0), snap)
        return snap

    def _legacy_poll(self) -> ClusterSnapshot:
        """An older service: the snapshot from its per-resource routes."""
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
        at, url, epoch = self._described
        now_epoch = self._held[0] if self._held else ""
        fresh = time.monotonic() - at < COORDINATOR_TTL
        if fresh and (url, epoch) == (self.client.base, now_epoch):
            return self._description
        try:
            body = self.client.coordinator()
        except (EndpointMissingError, OptionError):  # 404: not offered by this service
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
        self._described = (time.monotonic(), self.client.base, now_epoch)
        self._description = (info, str(body.get("dashboard") or ""))
        return self._description

    def _offered(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except EndpointMissingError:
            raise SourceError(
                f"this dtf-core serve is older and does not offer {what}; upgrade it to see them"
            ) from None
        except DtfError as exc:
            raise SourceError(str(exc)) from exc

    def attempts(self, run_id: str, task_id: str) -> list[AttemptInfo]:
        found = self._offered("attempts and their output", self.client.attempts, run_id, task_id)
        return [storeread.attempt_info(a) for a in found]

    def series_keys(self) -> list[SeriesKey]:
        found = self._offered("benchmark history", self.client.benchmarks)
        return [wire.series_key(k) for k in found]

    def series(self, key: SeriesKey) -> TrendSeries:
        answer = self._offered("benchmark history", self.client.series, key.benchmark, key.hardware)
        return wire.series(answer["series"])
