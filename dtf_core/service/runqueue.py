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

import concurrent.futures
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
        # One pool item per job submitted (each runs the best job waiting): all of
        # them done is every job done (see wait_idle).
        self._items: list[concurrent.futures.Future] = []

    def submit(self, priority: int, job: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._waiting, (-priority, next(self._seq), job))
            self._items = [f for f in self._items if not f.done()]
            self._items.append(self._pool.submit(self._next))

    def _next(self) -> None:
        with self._lock:
            _, _, job = heapq.heappop(self._waiting)
        job()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until every job submitted so far has finished; True if all have."""
        with self._lock:
            items = list(self._items)
        _, left = concurrent.futures.wait(items, timeout=timeout)
        return not left

    def shutdown(self) -> None:
        """Start nothing more; what runs finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
