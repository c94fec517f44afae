"""How long a task should take: what stragglers and slow workers are measured against.

Expected duration of a task, for a worker (``elsewhere``: not counting that
worker's own durations, so that a slow worker does not set its own bar):

1. the same task id in this run on other workers (a retry, a speculative copy);
2. the same task id in recent runs (the store's history), other workers first,
   its own only when nobody else ran it (then it is measured against its past);
3. its siblings in this run: tasks of the same ``name`` (one matrix entry)
   that passed on other workers, when they take about as long as each other.

Different tasks are never compared: one long test among short ones is not a
straggler, and a worker that drew it is not slow.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import pandas as pd

SIBLING_SPREAD = 1.5

# Past this many siblings the yardstick is computed again only when their number has
# grown by REFRESH_GROWTH: every result asks for it, and a median over all siblings
# each time made a run quadratic in its tasks (2,000 tiny benchmarks: ~1 s of the
# coordinator's CPU). A yardstick a few per cent behind moves a 3x threshold by nothing.
EXACT_UPTO = 32
REFRESH_GROWTH = 1.1


class Pace:
    def __init__(self, history: pd.DataFrame | None = None) -> None:
        # task id -> worker -> durations (s); from the store, then this run
        self._history: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._run: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._siblings: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._sibling_count: dict[str, int] = defaultdict(int)
        # (name, worker left out) -> (siblings counted, yardstick then)
        self._sibling_cache: dict[tuple[str, str | None], tuple[int, float | None]] = {}
        if history is not None and not history.empty:
            for task_id, worker, wall in history[["task_id", "worker", "wall_s"]].itertuples(
                index=False
            ):
                self._history[str(task_id)][str(worker or "")].append(float(wall))

    def note(self, task_id: str, name: str, worker: str, wall_s: float) -> None:
        """A passed attempt of ``task_id`` (matrix entry ``name``) took ``wall_s`` on ``worker``."""
        if wall_s > 0:
            self._run[task_id][worker].append(wall_s)
            self._siblings[name][worker].append(wall_s)
            self._sibling_count[name] += 1

    def expected(self, task_id: str, name: str, elsewhere: str | None = None) -> float | None:
        """Seconds ``task_id`` should take, judged without ``elsewhere``'s own; None: unknown."""
        for source in (self._run.get(task_id), self._history.get(task_id)):
            found = _median_without(source, elsewhere)
            if found is not None:
                return found
        own = self._history.get(task_id, {}).get(elsewhere or "")
        if own:
            return statistics.median(own)
        return self._sibling_yardstick(name, elsewhere)

    def _sibling_yardstick(self, name: str, elsewhere: str | None) -> float | None:
        by_worker = self._siblings.get(name)
        if not by_worker:
            return None
        left_out = by_worker.get(elsewhere, ()) if elsewhere is not None else ()
        n = self._sibling_count[name] - len(left_out)
        seen, value = self._sibling_cache.get((name, elsewhere), (-1, None))
        if n == seen or (EXACT_UPTO < seen <= n < seen * REFRESH_GROWTH):
            return value
        siblings = _without(by_worker, elsewhere)
        value = statistics.median(siblings) if _alike(siblings) else None
        self._sibling_cache[(name, elsewhere)] = (n, value)
        return value


def _without(by_worker: dict[str, list[float]] | None, worker: str | None) -> list[float]:
    return [v for w, vs in (by_worker or {}).items() if w != worker for v in vs]


def _median_without(by_worker: dict[str, list[float]] | None, worker: str | None) -> float | None:
    values = _without(by_worker, worker)
    return statistics.median(values) if values else None


def _alike(durations: list[float]) -> bool:
    """Siblings are a yardstick only when they take about as long as each other
    (a matrix over sizes is not): two or more, their spread (scaled MAD of the
    logs) within a factor of SIBLING_SPREAD."""
    if len(durations) < 2:
        return False
    logs = [math.log(d) for d in durations]
    mid = statistics.median(logs)
    spread = 1.4826 * statistics.median(abs(x - mid) for x in logs)
    return spread <= math.log(SIBLING_SPREAD)
