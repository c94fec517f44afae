"""The runs ``dtf-core serve`` executes at once, and the order the others wait in.

At most ``max-concurrent-runs`` run at a time, each on a pool thread; the
others wait, and when a thread frees up the waiting run with the highest
priority starts (submission order among equals). Every submission adds one
identical work item to the pool, which takes the best run waiting *when it
starts*, so the pool's own first-in-first-out order does not matter.

Ordering the runs that wait here is half of priorities across runs; the other
half is Dask's ``priority=`` on every task of the runs that are executing
(:mod:`dtf_core.run.priority`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["RunQueue"]


class RunQueue:
    def __init__(self, max_concurrent: int) -> None:
        self._pool = ThreadPoolExecutor(max_concurrent, thread_name_prefix="dtf-run")
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def submit(self, priority: int, job: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._waiting, (-priority, next(self._seq), job))
        self._pool.submit(self._next)

    def _next(self) -> None:
        with self._lock:
            _, _, job = heapq.heappop(self._waiting)
        job()

    def shutdown(self) -> None:
        """Start nothing more; what runs finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
