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

import statistics
from collections import defaultdict

import pandas as pd

from dtf_core.run.siblings import Siblings

SIBLING_SPREAD = 1.5


class Pace:
    def __init__(self, history: pd.DataFrame | None = None) -> None:
        # task id -> worker -> durations (s); from the store, then this run
        self._history: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._run: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        # name -> sorted durations: asked once per finished task, so no sorting per question
        self._siblings: dict[str, Siblings] = defaultdict(Siblings)
        if history is not None and not history.empty:
            for task_id, worker, wall in history[["task_id", "worker", "wall_s"]].itertuples(
                index=False
            ):
                self._history[str(task_id)][str(worker or "")].append(float(wall))

    def note(self, task_id: str, name: str, worker: str, wall_s: float) -> None:
        """A passed attempt of ``task_id`` (matrix entry ``name``) took ``wall_s`` on ``worker``."""
        if wall_s > 0:
            self._run[task_id][worker].append(wall_s)
            self._siblings[name].add(worker, wall_s)

    def expected(self, task_id: str, name: str, elsewhere: str | None = None) -> float | None:
        """Seconds ``task_id`` should take, judged without ``elsewhere``'s own; None: unknown."""
        for source in (self._run.get(task_id), self._history.get(task_id)):
            found = _median_without(source, elsewhere)
            if found is not None:
                return found
        own = self._history.get(task_id, {}).get(elsewhere or "")
        if own:
            return statistics.median(own)
        siblings = self._siblings.get(name)
        return siblings.yardstick(elsewhere, SIBLING_SPREAD) if siblings is not None else None


def _without(by_worker: dict[str, list[float]] | None, worker: str | None) -> list[float]:
    return [v for w, vs in (by_worker or {}).items() if w != worker for v in vs]


def _median_without(by_worker: dict[str, list[float]] | None, worker: str | None) -> float | None:
    values = _without(by_worker, worker)
    return statistics.median(values) if values else None
