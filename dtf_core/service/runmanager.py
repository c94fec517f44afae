"""The runs of ``dtf-core serve``: one :class:`~dtf_core.run.coordinator.Coordinator`
per submitted run, all sharing one Dask client and one Store.

Why a Coordinator per run (and not one loop for all runs): the Coordinator is
the same object ``dtf-core run`` uses, with the same retry, failover and
batching behaviour, untouched. Each runs on a thread of a bounded pool
(``dtf.service.max-concurrent-runs``; later runs wait, ``queued``, highest
priority first: :mod:`~dtf_core.service.runqueue`). They share
the Dask client (thread-safe) and the Store, whose lock serialises every
DuckDB statement and whose buffer is flushed by whichever run comes first: the
service process stays the only writer of the file.

Events: each run keeps its events in memory with a sequence number; the HTTP
layer waits for new ones through :attr:`ActiveRun.waiters`, woken on its own
event loop (``notify``), never from the run's thread directly. The numbers
belong to this process (:attr:`RunManager.instance`): a coordinator that
resumes the run numbers its events afresh.

An orderly stop (:meth:`RunManager.drain`, SIGTERM on ``serve``) never ends a
run: no new runs are taken, the runs in flight stop within a grace period
without ending (:meth:`Coordinator.detach <dtf_core.run.coordinator.Coordinator.detach>`),
and runs still queued are written down as open runs, so that the next
coordinator (a standby taking the database over, or this service started
again) resumes every one of them. Each run then says so in its events and is
``handed_over``: clients following it go and find the next coordinator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from distributed import Client

from dtf_core import reporting, spec
from dtf_core.errors import OptionError
from dtf_core.events import ClusterChanged, Event, RunFinished, RunStarted, TaskFinished
from dtf_core.model import AttemptResult
from dtf_core.run.coordinator import Coordinator
from dtf_core.run.priority import of_metadata
from dtf_core.run.state import new_run_id
from dtf_core.service import bundle, limits, shipping
from dtf_core.service.limits import UploadLimits
from dtf_core.service.readpath import ReadPath
from dtf_core.service.runqueue import RunQueue
from dtf_core.store import Store

logger = logging.getLogger("dtf.service")

HANDED_OVER = (
    "this coordinator stopped in order; the run stays open and goes on at the next one "
    "(a standby, or this service started again)"
)


class StoppingError(Exception):
    """The service is stopping (draining): it takes no new runs. Try again elsewhere or later."""


def event_to_dict(event: Event, seq: int) -> dict[str, Any]:
    return {"seq": seq, "type": type(event).__name__, **dataclasses.asdict(event)}


@dataclass
class ActiveRun:
    run_id: str
    owner: str
    suite: str
    total: int
    submitted_at: float
    # queued (not in the database yet) | running | passed | failed | cancelled | error
    status: str = "queued"
    done: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    coordinator: Coordinator | None = None
    cancel_requested: bool = False
    # The service stopped in order and left the run open for the next coordinator.
    handed_over: bool = False
    waiters: Any = None  # the HTTP layer's tornado Condition (loop-bound)
    priority: int = 0  # over other runs (dtf_core.run.priority)
    notify: Callable[[], None] = lambda: None  # set by the HTTP layer: wakes the waiters

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "running")

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "suite": self.suite, "owner": self.owner,
            "status": self.status, "done": self.done, "total": self.total,
            "submitted_at": self.submitted_at, "error": self.error, "priority": self.priority,
        }  # fmt: skip


class RunManager:
    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        workdir: Path,
        limits: UploadLimits,
        max_concurrent: int,
        keep_finished: int,
        verify: Callable[[AttemptResult], str | None] | None = None,
        unschedulable_timeout: float | None = None,
    ) -> None:
        self.client, self.store, self.workdir = client, store, workdir
        self.limits, self.keep_finished = limits, keep_finished
        self.verify = verify
        self.unschedulable_timeout = unschedulable_timeout
        self.runs: OrderedDict[str, ActiveRun] = OrderedDict()
        self._lock = threading.Lock()
        # Upload directories in use: a submit unpacking one (run id -> owner, also
        # counted in the queue) or a run's thread. Retention never touches these.
        self._pending: dict[str, str] = {}
        self._busy: set[str] = set()
        self._queue = RunQueue(max_concurrent)
        # Told every event of every run (the run's thread): the metrics count them.
        self.listeners: list[Callable[[ActiveRun, Event], None]] = []
        self.run_metadata: dict[str, Any] = {}  # added to each run's (the dashboard link)
        # Called (any thread, must not block) whenever what a console shows may
        # have changed: a run event, a submission, a flush (task states reach the
        # database there, after the events that announced them). Attached
        # consoles follow it.
        self.on_change: list[Callable[[], None]] = []
        store.flush_listeners.append(lambda _seconds, _stored: self._changed())
        # None, or the grace (s) runs in flight got when the service began to stop.
        self._drain_grace: float | None = None
        # Names this process's numbering of run events (a restart numbers afresh).
        self.instance = secrets.token_hex(8)
        # The API's threads and what it shares between requests (service/readpath.py).
        self.readpath = ReadPath(functools.partial(reporting.build_summary, store))

    @property
    def stopping(self) -> bool:
        return self._drain_grace is not None

    # ---------------------------------------------------------------- submit
    def submit(
        self,
        owner: str,
        suite_path: str,
        archive: bytes,
        metadata: dict[str, Any],
        priority: int = 0,
    ) -> ActiveRun:
        """Unpack, validate and queue a run (blocking: call from a worker thread).
        Bad input raises :class:`~dtf_core.errors.BadInputError`, a full queue
        :class:`~dtf_core.errors.ServiceBusyError`, a service stopping
        :class:`StoppingError`; nothing is kept. ``priority`` is what
        the API granted (:mod:`dtf_core.service.priority`)."""
        rel = PurePosixPath(suite_path)
        if not suite_path or rel.is_absolute() or ".." in rel.parts:
            raise OptionError(f"suite_path {suite_path!r} must be relative, inside the archive")
        limits.check_archive(len(archive), self.limits)
        run_id = new_run_id()
        run_dir = self.workdir / run_id
        with self._lock:
            if self.stopping:
                raise StoppingError("the service is stopping: submit the run to the next one")
            # Counted before the upload is unpacked: uploads in progress hold a place.
            owners = [r.owner for r in self.runs.values() if not r.finished]
            limits.check_queue(owner, [*owners, *self._pending.values()], self.limits)
            self._pending[run_id] = owner
        try:
            bundle.unpack(
                archive, run_dir,
                unpacked_limit=self.limits.unpacked_limit, entry_limit=self.limits.entry_limit,
            )  # fmt: skip
            # Submitted code never runs here: files and syntax trees only.
            suite = spec.load_suite(run_dir / rel, run_code=False)
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            self._release(run_id)
            raise
        run = ActiveRun(run_id, owner, suite.name, len(suite.tasks), time.time())
        run.priority = priority
        meta = {**metadata, **self.run_metadata, "submitted_by": owner}
        with self._lock:
            del self._pending[run_id]
            stopping = self.stopping
            if not stopping:
                self.runs[run_id] = run
                self._busy.add(run_id)
                self._evict()
        if stopping:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise StoppingError("the service is stopping: submit the run to the next one")
        self._queue.submit(priority, lambda: self._execute(run, suite, str(run_dir), meta))
        self._changed()
        return run

    def _execute(self, run: ActiveRun, suite: spec.Suite, run_dir: str, meta: dict) -> None:
        plugin = f"dtf-files-{run.run_id}"
        coord = Coordinator(
            self.client, self.store, embedded=False,
            unschedulable_timeout=self.unschedulable_timeout,
            listeners=[lambda e: self._on_event(run, e)], verify=self.verify,
            priority=run.priority,
        )  # fmt: skip
        self._attach(run, coord)
        if run.cancel_requested:
            coord.cancel()  # cancelled while queued: recorded as a cancelled run
        blobs: list[str] = []
        try:
            try:
                blobs = shipping.ship(self.client, run.run_id, run_dir, plugin)
            except Exception as exc:  # workers on this host still read run_dir in place
                logger.warning("run %s: could not ship the suite to workers: %s", run.run_id, exc)
            result = coord.run(suite, run_id=run.run_id, metadata=meta)
            self._ended(run, result.status)
        except Exception as exc:
            if self._left_open(run, exc):
                return
            logger.exception("run %s failed inside dtf", run.run_id)
            run.status, run.error = "error", f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):
                self.store.finish_run(run.run_id, "error", time.time())
            self._on_event(run, RunFinished(run.run_id, "error", {}, 0.0))
        finally:
            shipping.withdraw(self.client, plugin, blobs)
            run.coordinator = None
            self._release(run.run_id, ended=True)
            run.notify()

    def resume_open_runs(self) -> list[str]:
        """Queue every run the database still has as ``running`` (its coordinator
        died) to be finished by :meth:`Coordinator.resume`; their ids."""
        open_runs = [r for r in self.store.list_runs(limit=10_000) if r["status"] == "running"]
        for row in reversed(open_runs):  # oldest first
            meta = row.get("metadata") or {}
            run = ActiveRun(
                str(row["run_id"]), str(meta.get("submitted_by", "")), str(row["suite"]),
                int(row.get("tasks") or 0), float(row["started_at"] or time.time()),
                status="running", priority=of_metadata(meta),
            )  # fmt: skip
            with self._lock:
                self.runs[run.run_id] = run
                self._busy.add(run.run_id)
            self._queue.submit(run.priority, functools.partial(self._resume, run))
        return [str(r["run_id"]) for r in open_runs]

    def _resume(self, run: ActiveRun) -> None:
        coord = Coordinator(
            self.client, self.store, embedded=False,
            unschedulable_timeout=self.unschedulable_timeout,
            listeners=[lambda e: self._on_event(run, e)], verify=self.verify,
        )  # fmt: skip
        self._attach(run, coord)
        run_dir = self.workdir / run.run_id
        plugin = f"dtf-files-{run.run_id}"
        blobs: list[str] = []
        try:
            if run_dir.is_dir():
                with contextlib.suppress(Exception):
                    blobs = shipping.ship(self.client, run.run_id, str(run_dir), plugin)
            result = coord.resume(run.run_id)
            self._ended(run, result.status)
        except Exception as exc:
            if self._left_open(run, exc):
                return
            logger.exception("run %s could not be resumed", run.run_id)
            run.status, run.error = "error", f"{type(exc).__name__}: {exc}"
            self._on_event(run, RunFinished(run.run_id, "error", {}, 0.0))
        finally:
            shipping.withdraw(self.client, plugin, blobs)
            run.coordinator = None
            self._release(run.run_id, ended=True)
            run.notify()

    def _release(self, run_id: str, *, ended: bool = False) -> None:
        if ended:
            # Retention counts a directory's age from its run's end.
            with contextlib.suppress(OSError):
                os.utime(self.workdir / run_id)
        with self._lock:
            self._pending.pop(run_id, None)
            self._busy.discard(run_id)

    def in_use(self) -> set[str]:
        """Run ids whose upload directory must stay: not finished, or still in use."""
        with self._lock:
            unfinished = {k for k, r in self.runs.items() if not r.finished}
            return unfinished | self._busy | set(self._pending)

    def _attach(self, run: ActiveRun, coord: Coordinator) -> None:
        run.coordinator = coord
        grace = self._drain_grace
        if grace is not None:  # stopping already: a queued run is only written down
            coord.detach(grace)

    def _ended(self, run: ActiveRun, status: str) -> None:
        """The run's coordinator returned: finished, or left open by an orderly stop."""
        if status == "running":
            run.handed_over = True
            self._on_event(run, ClusterChanged(run.run_id, "coordinator-stopped", HANDED_OVER))
        run.status = status

    def _left_open(self, run: ActiveRun, exc: Exception) -> bool:
        """While stopping in order, a run that fails (its client closing under
        it) stays open for the next coordinator rather than ending in error."""
        if not self.stopping:
            return False
        logger.warning("run %s left open while stopping: %s: %s", run.run_id,
                       type(exc).__name__, exc)  # fmt: skip
        self._ended(run, "running")
        return True

    def _on_event(self, run: ActiveRun, event: Event) -> None:
        # Called on the run's thread: record, then let the HTTP loop wake its waiters.
        if isinstance(event, TaskFinished):
            run.done = event.done
        elif isinstance(event, RunStarted):
            # Only now is the run in the database: until then readers see it queued.
            run.total, run.status = event.total, "running"
        elif isinstance(event, RunFinished) and run.status == "running":
            run.status = event.status
        if isinstance(event, RunFinished):  # the history moved: older summaries are dated
            self.readpath.run_ended(run.run_id)
        # Its row was written (begun, ended) before the event: no list read before is served.
        self.readpath.runs_moved(rows=isinstance(event, (RunStarted, RunFinished)))
        run.events.append(event_to_dict(event, len(run.events) + 1))
        for listener in self.listeners:
            try:
                listener(run, event)
            except Exception:  # a metric must never stop a run
                logger.exception("run %s: a listener failed", run.run_id)
        run.notify()
        self._changed()

    def _changed(self) -> None:
        for hook in self.on_change:
            hook()

    # ---------------------------------------------------------------- control
    def get(self, run_id: str) -> ActiveRun | None:
        with self._lock:
            return self.runs.get(run_id)

    def cancel(self, run: ActiveRun) -> None:
        run.cancel_requested = True
        coord = run.coordinator
        if coord is not None:
            coord.cancel()

    def active(self) -> list[ActiveRun]:
        with self._lock:
            return [r for r in self.runs.values() if not r.finished]

    def _evict(self) -> None:
        finished = [k for k, r in self.runs.items() if r.finished]
        for k in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.runs[k]

    def drain(self, grace: float) -> None:
        """Stop in order (returns at once): take no new runs; every run in flight
        stops within ``grace`` s without ending, recording what finishes
        meanwhile; queued runs are written down as open runs. A second call
        (a second SIGTERM) can shorten the grace."""
        with self._lock:
            self._drain_grace = grace
            runs = list(self.runs.values())
        active = [r for r in runs if not r.finished]
        for r in active:
            coord = r.coordinator
            if coord is not None:
                coord.detach(grace)
        logger.info("stopping in order: %d run(s) in flight get %.0fs", len(active), grace)

    def wait_drained(self, timeout: float) -> bool:
        """Wait (bounded) until no run's coordinator is working, queued runs
        included (each is written down as an open run); True if none is."""
        return self._queue.wait_idle(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop at once (the end of ``serve``): as :meth:`drain` with no grace,
        unless a drain is under way; wait (bounded) for the runs to let go."""
        if not self.stopping:
            self.drain(0.0)
        if not self.wait_drained(timeout):
            logger.warning("runs still working after %.0fs; stopping anyway", timeout)
        self._queue.shutdown()
        self.readpath.shutdown()
