"""How a run's first tasks travel to Dask: subprocess tasks (pytest, command) one per
Dask task; in-process benchmarks in batches, because Dask's ~1 ms per-task overhead
would otherwise dominate tiny benchmarks (``dtf.batch`` settings).

A batch holds tasks of one ``requires`` and one ``priority`` (a batch is one Dask
task with one priority), about ``batch.per-thread`` batches per capable worker
thread, at most ``batch.max-size`` tasks each. Groups come out highest priority
first, the order they are submitted in.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

from dtf_core import config
from dtf_core.model import TaskKind
from dtf_core.run.state import TaskState

__all__ = ["plan"]


def plan(
    ready: list[TaskState], threads_for: Callable[[dict[str, float]], int]
) -> list[list[TaskState]]:
    """The groups to submit, one Dask task each; ``threads_for(requires)`` is how
    many worker threads can run such a task (at least 1)."""
    ordered = sorted(ready, key=lambda st: -st.spec.priority)  # stable: suite order within
    groups: list[list[TaskState]] = []
    benches: dict[tuple, list[TaskState]] = defaultdict(list)
    for st in ordered:
        if st.spec.kind is TaskKind.BENCHMARK:
            benches[(st.spec.priority, *sorted(st.spec.requires.items()))].append(st)
        else:
            groups.append([st])
    per_thread = int(config.get("batch.per-thread"))
    max_size = int(config.get("batch.max-size"))
    for group in benches.values():
        threads = max(1, threads_for(group[0].spec.requires))
        n_batches = min(len(group), threads * per_thread)
        size = min(max(1, math.ceil(len(group) / max(1, n_batches))), max_size)
        groups += [group[i : i + size] for i in range(0, len(group), size)]
    groups.sort(key=lambda g: -g[0].spec.priority)  # stable: subprocess tasks first as before
    return groups
