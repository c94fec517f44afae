"""The runs of ``dtf-core serve``: one :class:`~dtf_core.run.coordinator.Coordinator`
per submitted run, all sharing one Dask client and one Store.

Why a Coordinator per run (and not one loop for all runs): the Coordinator is
the same object ``dtf-core run`` uses, with the same retry, failover and
batching behaviour, untouched. Each runs on a thread of a bounded pool
(``dtf.service.max-concurrent-runs``; later runs wait, ``queued``). They share
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

import concurrent.futures
import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from distributed import Client

from dtf_core import spec
from dtf_core.errors import OptionError
from dtf_core.events import ClusterChanged, Event, RunFinished, RunStarted, TaskFinished
from dtf_core.model import AttemptResult
from dtf_core.run.coordinator import Coordinator
from dtf_core.run.state import new_run_id
from dtf_core.service import bundle
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
    notify: Callable[[], None] = lambda: None  # set by the HTTP layer: wakes the waiters

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "running")

    def describe(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "suite": self.suite, "owner": self.owner,
            "status": self.status, "done": self.done, "total": self.total,
            "submitted_at": self.submitted_at, "error": self.error,
        }  # fmt: skip


class RunManager:
    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        workdir: Path,
        upload_limit: int,
        max_concurrent: int,
        keep_finished: int,
        verify: Callable[[AttemptResult], str | None] | None = None,
        unschedulable_timeout: float | None = None,
    ) -> None:
        self.client, self.store, self.workdir = client, store, workdir
        self.upload_limit, self.keep_finished = upload_limit, keep_finished
        self.verify = verify
        self.unschedulable_timeout = unschedulable_timeout
        self.runs: OrderedDict[str, ActiveRun] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="dtf-run")
        self._threads: list[concurrent.futures.Future] = []
        # None, or the grace (s) runs in flight got when the service began to stop.
        self._drain_grace: float | None = None
        # Names this process's numbering of run events (a restart numbers afresh).
        self.instance = secrets.token_hex(8)

    @property
    def stopping(self) -> bool:
        return self._drain_grace is not None

    # ---------------------------------------------------------------- submit
    def submit(
        self, owner: str, suite_path: str, archive: bytes, metadata: dict[str, Any]
    ) -> ActiveRun:
        """Unpack, validate and queue a run (blocking: call from a worker thread).
        Bad input raises :class:`~dtf_core.errors.BadInputError`; nothing is kept."""
        rel = PurePosixPath(suite_path)
        if not suite_path or rel.is_absolute() or ".." in rel.parts:
            raise OptionError(f"suite_path {suite_path!r} must be relative, inside the archive")
        run_id = new_run_id()
        run_dir = self.workdir / run_id
        try:
            bundle.unpack(archive, run_dir, self.upload_limit)
            # Submitted code never runs here: files and syntax trees only.
            suite = spec.load_suite(run_dir / rel, run_code=False)
        except BaseException:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        run = ActiveRun(run_id, owner, suite.name, len(suite.tasks), time.time())
        meta = {**metadata, "submitted_by": owner}
        with self._lock:
            if self.stopping:
                raise StoppingError("the service is stopping: submit the run to the next one")
            self.runs[run_id] = run
            self._evict()
            self._threads = [t for t in self._threads if not t.done()]
            self._threads.append(
                self._pool.submit(self._execute, run, suite, archive, str(run_dir), meta)
            )
        return run

    def _execute(
        self, run: ActiveRun, suite: spec.Suite, archive: bytes, run_dir: str, meta: dict
    ) -> None:
        plugin = f"dtf-files-{run.run_id}"
        coord = Coordinator(
            self.client, self.store, embedded=False,
            unschedulable_timeout=self.unschedulable_timeout,
            listeners=[lambda e: self._on_event(run, e)], verify=self.verify,
        )  # fmt: skip
        self._attach(run, coord)
        if run.cancel_requested:
            coord.cancel()  # cancelled while queued: recorded as a cancelled run
        try:
            try:
                self.client.register_plugin(
                    bundle.SuiteFilesPlugin(archive, run_dir, self.upload_limit), name=plugin
                )
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
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(plugin)
            run.coordinator = None
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
                status="running",
            )  # fmt: skip
            with self._lock:
                self.runs[run.run_id] = run
                self._threads.append(self._pool.submit(self._resume, run))
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
        try:
            if run_dir.is_dir():
                with contextlib.suppress(Exception):
                    archive = bundle.pack(run_dir, self.upload_limit)
                    self.client.register_plugin(
                        bundle.SuiteFilesPlugin(archive, str(run_dir), self.upload_limit),
                        name=plugin,
                    )
            result = coord.resume(run.run_id)
            self._ended(run, result.status)
        except Exception as exc:
            if self._left_open(run, exc):
                return
            logger.exception("run %s could not be resumed", run.run_id)
            run.status, run.error = "error", f"{type(exc).__name__}: {exc}"
            self._on_event(run, RunFinished(run.run_id, "error", {}, 0.0))
        finally:
            with contextlib.suppress(Exception):
                self.client.unregister_worker_plugin(plugin)
            run.coordinator = None
            run.notify()

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
        run.events.append(event_to_dict(event, len(run.events) + 1))
        run.notify()

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
        """Wait (bounded) until no run's coordinator is working; True if none is."""
        with self._lock:
            threads = list(self._threads)
        _, left = concurrent.futures.wait(threads, timeout=timeout)
        return not left

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop at once (the end of ``serve``): as :meth:`drain` with no grace,
        unless a drain is under way; wait (bounded) for the runs to let go."""
        if not self.stopping:
            self.drain(0.0)
        if not self.wait_drained(timeout):
            logger.warning("runs still working after %.0fs; stopping anyway", timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
