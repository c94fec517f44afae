"""How ``dtf-core serve`` answers reads while runs write: the threads reads run
on, a run's summary built once and shared, the workers listed once for every
poller.

Why (measured with 20 concurrent submitters, docs/benchmarks.md "Service"):
every blocking call went to the event loop's one default pool (6 threads on 2
cores), where a cheap read (the run list a viewer polls at 10 Hz) queued
behind uploads being unpacked and run summaries being built, and each
``results`` or ``report`` call built the whole summary again (trends over the
history: about 0.3 s of CPU for a 50-benchmark run on an idle core, seconds
when twenty ask at once). So:

* **Two pools.** ``quick`` (store reads of a few rows) and ``heavy``
  (unpacking an upload, building a summary, rendering a report: CPU under the
  GIL, so one thread does them as fast as several and leaves the GIL to the
  others more often). A read never waits behind a computation.
* **A run's summary, once.** Built on the heavy pool when first asked for,
  then reused by ``results``, ``analysis`` and every ``report`` format;
  concurrent askers share one build. A finished run's
  summary is kept until another run has finished and it is older than
  :data:`SUMMARY_REUSE_S` (the trends in it look at the whole history); a run
  in flight gets a fresh one, shared only with requests made during its build.
* **Workers, once per poll interval.** ``/v1/workers`` asks the scheduler
  through the Dask client's event loop, which twenty runs keep busy. The
  answer is reused for :data:`WORKERS_FRESH_S`; once it is half that old the
  next request refreshes it in the background, so a poller is answered from
  memory while a one-off request still gets an answer at most that old.
* **The run list, once per change.** ``/v1/runs`` is answered from memory
  (:class:`SharedAnswer`) until a run begins or ends, or for
  :data:`RUNS_FRESH_S` while tasks end: a viewer polling at 10 Hz during a
  1,000-task run no longer reads DuckDB ten times a second.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

SUMMARY_REUSE_S = 10.0  # a finished run's summary, when other runs ended since
SUMMARIES_KEPT = 64  # finished runs' summaries kept (the newest)
WORKERS_FRESH_S = 0.5  # /v1/workers answered from memory while this young
RUNS_FRESH_S = 0.5  # /v1/runs from memory while this young, when tasks ended since
RUNS_IDLE_S = 5.0  # ... and while this young when nothing happened since
RUN_LISTS_KEPT = 8  # run lists of different limits held at once
QUICK_THREADS = 4


@dataclass
class _Summary:
    future: Future[dict[str, Any]]
    final: bool  # started after the run had ended
    started: float  # monotonic
    ended_runs: int  # runs ended in this service when it started


class ReadPath:
    """The pools and the shared answers; every method may be called from any thread."""

    def __init__(self, build_summary: Callable[[str], dict[str, Any]]) -> None:
        self.quick = ThreadPoolExecutor(QUICK_THREADS, thread_name_prefix="dtf-api-read")
        self.heavy = ThreadPoolExecutor(1, thread_name_prefix="dtf-api-heavy")
        self._build = build_summary
        self._lock = threading.RLock()  # a done-callback may run inside it
        self._summaries: OrderedDict[str, _Summary] = OrderedDict()
        self._ended_runs = 0
        self.worker_list = SharedAnswer(self.quick, WORKERS_FRESH_S)
        self._runs: dict[int, SharedAnswer] = {}  # limit -> the run list

    # ---- summaries -----------------------------------------------------------------

    def summary(self, run_id: str, final: bool) -> Future[dict[str, Any]]:
        """The run's summary (a future: wait for it off the event loop). ``final``:
        the run has ended as the caller read it, so one built before is stale."""
        with self._lock:
            have = self._summaries.get(run_id)
            if have is not None and self._usable(have, final):
                self._summaries.move_to_end(run_id)
                return have.future
            entry = _Summary(
                self.heavy.submit(self._build, run_id), final, time.monotonic(), self._ended_runs
            )
            self._summaries[run_id] = entry
            self._summaries.move_to_end(run_id)
            while len(self._summaries) > SUMMARIES_KEPT:
                self._summaries.popitem(last=False)
            return entry.future

    def _usable(self, have: _Summary, final: bool) -> bool:
        if not have.future.done():  # a build under way: share it if it saw the same state
            return have.final or not final
        if not have.final or not final or have.future.exception() is not None:
            return False  # a run in flight moves on; a failed build is tried again
        others_ended = self._ended_runs > have.ended_runs
        return not others_ended or time.monotonic() - have.started < SUMMARY_REUSE_S

    def run_ended(self, run_id: str) -> None:
        """A run ended: summaries built before it are older than the history now.
        Nothing is built until someone asks: most runs' reports are never read
        through the API (a console does not, ``submit`` only with report options),
        and a 1,000-benchmark run's summary is seconds of CPU the next runs need."""
        with self._lock:
            self._ended_runs += 1

    # ---- shared answers: workers, the run list ----------------------------------------

    def workers(self, read: Callable[[], Any]) -> Future[Any]:
        """``read()`` (the workers as the API answers them), begun at most
        :data:`WORKERS_FRESH_S` ago; refreshed in the background once half that."""
        return self.worker_list.get(read)

    def runs(self, limit: int, read: Callable[[], Any]) -> Future[Any]:
        """``read()`` (the newest ``limit`` stored runs), shared: see :class:`SharedAnswer`."""
        with self._lock:
            answer = self._runs.get(limit)
            if answer is None:
                if len(self._runs) >= RUN_LISTS_KEPT:
                    self._runs.clear()  # a client walking through many limits
                answer = self._runs[limit] = SharedAnswer(self.quick, RUNS_FRESH_S, RUNS_IDLE_S)
        return answer.get(read)

    def runs_moved(self, *, rows: bool) -> None:
        """A run event: progress (a task's counts in the run list may have moved), or
        with ``rows`` a run began or ended (its row did): no list read before is served."""
        with self._lock:
            for answer in self._runs.values():
                answer.moved(structural=rows)

    def shutdown(self) -> None:
        for pool in (self.quick, self.heavy):
            pool.shutdown(wait=False, cancel_futures=True)


class SharedAnswer:
    """One read answered to every poller, from memory, on the caller's thread.

    Why: each ``/v1/runs`` read went to the quick pool and to DuckDB (a join over
    every task of the history: 14 ms median, 92 ms p99 while a 1,000-task run
    went on), and each of the two thread hops waited for the GIL behind the run's
    thread (p99 ~20 ms each); docs/benchmarks.md "Service". A held answer is
    returned as a done future, which the API hands out without leaving the loop.

    An answer is served while younger than ``fresh_s``, or ``idle_s`` when
    nothing moved since its read began (:meth:`moved` without ``structural``);
    past half that age a request still gets it while one read refreshes it
    behind. A structural move (a run began or ended) is never missed: no answer
    or read in flight begun before it is served after it.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        fresh_s: float,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fresh_s, self.idle_s = fresh_s, idle_s
        self._pool, self._clock = pool, clock
        self._lock = threading.RLock()  # a done-callback may run inside it
        self._progress = self._structure = 0
        # (begun, progress, structure) when its read began, and the answer
        self._held: tuple[float, int, int, Future[Any]] | None = None
        self._reading: tuple[int, Future[Any]] | None = None  # (structure, read in flight)
        self._last_read: Callable[[], Any] | None = None

    def moved(self, *, structural: bool) -> None:
        """Something the answer shows moved; a structural move also starts the
        read at once (the last asker's ``read``), so that the next poller finds
        it done or under way instead of starting it and waiting for all of it."""
        with self._lock:
            self._progress += 1
            self._structure += int(structural)
            if structural and self._last_read is not None:
                self._read(self._last_read, self._clock())

    def get(self, read: Callable[[], Any]) -> Future[Any]:
        now = self._clock()
        with self._lock:
            self._last_read = read
            held, reading = self._held, self._reading
            if held is not None and held[2] == self._structure:
                begun, progress, _, answer = held
                unmoved = progress == self._progress
                limit = self.idle_s if unmoved and self.idle_s is not None else self.fresh_s
                if now - begun < limit:
                    if reading is None and now - begun >= limit / 2:
                        self._read(read, now)
                    return answer
            if reading is not None and reading[0] == self._structure:
                return reading[1]
            return self._read(read, now)

    def _read(self, read: Callable[[], Any], now: float) -> Future[Any]:
        begun = (now, self._progress, self._structure)
        fut = self._pool.submit(read)
        self._reading = (self._structure, fut)

        def done(f: Future[Any]) -> None:
            with self._lock:
                if self._reading is not None and self._reading[1] is f:
                    self._reading = None
                # Reads may land out of order: keep the one that began after more moves.
                newer = self._held is None or begun[1::-1] >= self._held[1::-1]
                if f.exception() is None and newer:
                    self._held = (*begun, f)

        fut.add_done_callback(done)
        return fut
