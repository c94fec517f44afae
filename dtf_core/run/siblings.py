"""The durations of one matrix entry's passed attempts, as a yardstick for a worker.

:class:`~dtf_core.run.pace.Pace` measures a task against its siblings (the tasks
of the same ``name``) on *other* workers: their median, when they take about as
long as each other (the scaled MAD of their logs within a factor). Done by
collecting and sorting every sibling's duration for each finished task, that
was quadratic in the size of the matrix: 70 % of the coordinator's time at
5,000 tiny benchmarks, and growing (docs/benchmarks.md, Scale).

Here the durations stay sorted, all of them and each worker's, so that "the
siblings without worker w" is a difference of two sorted lists: its k-th
smallest is found by bisection, and whether the MAD is within the bound is a
count of the values inside a window around the median. Each question costs
O(log^2 n); adding a duration is one insertion into each list.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort

__all__ = ["Siblings"]


class _Sorted:
    """A sorted multiset minus one of its sub-multisets (one worker's values)."""

    def __init__(self, all_: list[float], mine: list[float]) -> None:
        self.all, self.mine = all_, mine
        self.n = len(all_) - len(mine)

    def count_le(self, v: float) -> int:
        return bisect_right(self.all, v) - bisect_right(self.mine, v)

    def count_lt(self, v: float) -> int:
        return bisect_left(self.all, v) - bisect_left(self.mine, v)

    def kth(self, k: int) -> float:
        """The k-th smallest (0-based): the first value of ``all`` with more than
        k values of the difference at or below it."""
        lo, hi = 0, len(self.all) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.count_le(self.all[mid]) > k:
                hi = mid
            else:
                lo = mid + 1
        return self.all[lo]

    def median(self) -> float:
        """As :func:`statistics.median` of the values (the same arithmetic)."""
        k = self.n // 2
        if self.n % 2:
            return self.kth(k)
        return (self.kth(k - 1) + self.kth(k)) / 2


class Siblings:
    def __init__(self) -> None:
        self._raw: list[float] = []
        self._logs: list[float] = []
        self._by_worker: dict[str, tuple[list[float], list[float]]] = {}

    def add(self, worker: str, seconds: float) -> None:
        """A passed attempt took ``seconds`` (> 0) on ``worker``."""
        log = math.log(seconds)
        raw, logs = self._by_worker.setdefault(worker, ([], []))
        insort(self._raw, seconds)
        insort(self._logs, log)
        insort(raw, seconds)
        insort(logs, log)

    def _without(self, worker: str | None) -> tuple[_Sorted, _Sorted]:
        raw, logs = self._by_worker.get(worker, ([], [])) if worker is not None else ([], [])
        return _Sorted(self._raw, raw), _Sorted(self._logs, logs)

    def yardstick(self, worker: str | None, spread: float) -> float | None:
        """The median duration of the siblings on workers other than ``worker``,
        if there are two or more and they are alike (1.4826 x the MAD of their
        logs at most ``log(spread)``); else None."""
        raw, logs = self._without(worker)
        if raw.n < 2 or not _alike(logs, math.log(spread) / 1.4826):
            return None
        return raw.median()


def _alike(logs: _Sorted, bound: float) -> bool:
    """Whether the median absolute deviation of ``logs`` from their median is at
    most ``bound``, without listing the deviations."""
    n, mid = logs.n, logs.median()
    lo, hi = mid - bound, mid + bound
    inside = logs.count_le(hi) - logs.count_lt(lo)  # deviations <= bound
    k = n // 2
    if n % 2:
        return inside > k  # the middle deviation is within the bound
    if inside > k:
        return True  # both middle deviations are
    if inside < k:
        return False  # neither is
    # The lower middle deviation is the largest inside, the upper the smallest
    # outside: their mean decides.
    largest_in = max(mid - logs.kth(logs.count_lt(lo)), logs.kth(logs.count_le(hi) - 1) - mid)
    below, above = logs.count_lt(lo), logs.count_le(hi)
    outside = []
    if below:
        outside.append(mid - logs.kth(below - 1))
    if above < n:
        outside.append(logs.kth(above) - mid)
    return (largest_in + min(outside)) / 2 <= bound
