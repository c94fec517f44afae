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
        self._workers: tuple[float, Future[Any]] | None = None  # (begun, answered)
        self._reading: Future[Any] | None = None

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

    # ---- workers -------------------------------------------------------------------

    def workers(self, read: Callable[[], Any]) -> Future[Any]:
        """``read()`` (the workers as the API answers them), begun at most
        :data:`WORKERS_FRESH_S` ago; refreshed in the background once half that."""
        now = time.monotonic()
        with self._lock:
            held, reading = self._workers, self._reading
            if held is not None and now - held[0] < WORKERS_FRESH_S:
                if reading is None and now - held[0] >= WORKERS_FRESH_S / 2:
                    self._read_workers(read, now)
                return held[1]
            return reading if reading is not None else self._read_workers(read, now)

    def _read_workers(self, read: Callable[[], Any], now: float) -> Future[Any]:
        fut = self._reading = self.quick.submit(read)

        def done(f: Future[Any]) -> None:
            with self._lock:
                self._reading = None
                if f.exception() is None:
                    self._workers = (now, f)

        fut.add_done_callback(done)
        return fut

    def shutdown(self) -> None:
        for pool in (self.quick, self.heavy):
            pool.shutdown(wait=False, cancel_futures=True)
