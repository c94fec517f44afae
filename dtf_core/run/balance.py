"""Splitting a running pytest chunk when a worker thread has nothing to do.

Chunks are packed from estimates: exact enough with history, rough without
(a first run knows files, not tests or durations). Near the end of a run one
chunk is then often still busy while the other workers idle. The coordinator
watches for that moment: nothing left to start, fewer unfinished tasks than
worker threads, and a running chunk that still has a lot ahead of it (from
its own pace so far). It asks that chunk to yield (``runner.request_yield``):
pytest stops after its current test and hands back the tests it never
started. They are cut in two, in pytest's order (each half keeps its modules
together): the first half goes on as the same task, the second becomes a new
task of the run (``<task>.s<n>``, stored like any other). Nothing runs twice.

A part the :class:`~dtf_core.run.coordinator.Coordinator` owns, one per run,
given what it needs: the run's task states, a way to find a running chunk's
Dask key, to ask the workers to yield it, and to submit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dtf_core import config
from dtf_core.model import AttemptResult, TaskKind
from dtf_core.run.state import Submit, TaskState
from dtf_core.store import Store


@dataclass
class ChunkProgress:
    """What the coordinator hears from one attempt of a running pytest chunk."""

    attempt: int
    collected: int = 0  # tests it collected (0 until known)
    done: int = 0  # test results so far
    since: float = 0.0  # monotonic time its tests began (collection done)
    asked: bool = False  # already asked to yield

    def seconds_left(self, now: float) -> float:
        """Its remaining tests at its own pace so far (no test done yet: the
        time spent on the first one counts for each)."""
        left = self.collected - self.done
        if left < 2 or not self.collected:
            return 0.0
        return left * (now - self.since) / max(self.done, 1)


class ChunkBalancer:
    def __init__(
        self,
        run_id: str,
        states: dict[str, TaskState],
        store: Store,
        *,
        threads: Callable[[], int],
        key_of: Callable[[str, int], str | None],
        ask_yield: Callable[[str], object],
        submit: Submit,
        split_min_s: float | None = None,
    ) -> None:
        self._run_id = run_id
        self._states = states  # the run loop's own dict: split tasks are added to it
        self._store = store
        self._threads = threads  # worker threads connected now
        self._key_of = key_of  # (task id, attempt) -> the in-flight Dask key, if any
        self._ask_yield = ask_yield  # ask the worker running that key to yield
        self._submit = submit
        self._chunks: dict[str, ChunkProgress] = {}
        self._checked = 0.0
        self._split_min_s = (
            config.seconds("pytest.split-min") if split_min_s is None else split_min_s
        )

    def note_progress(self, msg: dict[str, Any]) -> None:
        """A running chunk published its counts (and, once, what it collected)."""
        task_id, attempt = str(msg["task_id"]), int(msg.get("attempt", 0))
        cp = self._chunks.get(task_id)
        if cp is None or cp.attempt != attempt:
            cp = self._chunks[task_id] = ChunkProgress(attempt)
        if "collected" in msg:
            cp.collected, cp.since = int(msg["collected"]), time.monotonic()
        cp.done += sum(int(v) for v in dict(msg.get("counts") or {}).values())

    def maybe_split(self) -> None:
        """Ask the chunk with the most work ahead to yield, if a thread idles."""
        now = time.monotonic()
        if self._split_min_s <= 0 or now - self._checked < 0.5:
            return
        self._checked = now
        pending = [s for s in self._states.values() if s.final is None]
        if not pending or len(pending) >= self._threads() or any(not s.inflight for s in pending):
            return  # every thread busy, or work is waiting to start anyway
        best: tuple[float, str] | None = None
        for st in pending:
            cp = self._chunks.get(st.spec.task_id)
            if st.spec.kind is not TaskKind.PYTEST or cp is None or cp.asked:
                continue
            if cp.attempt != st.attempt or not cp.collected:
                continue
            left = cp.seconds_left(now)
            if left >= self._split_min_s and (best is None or left > best[0]):
                best = (left, st.spec.task_id)
        if best is None:
            return
        task_id = best[1]
        self._chunks[task_id].asked = True
        key = self._key_of(task_id, self._states[task_id].attempt)
        if key is not None:
            self._ask_yield(key)

    def split_yielded(self, st: TaskState, res: AttemptResult) -> None:
        """The chunk yielded: its first half of what never started goes on as
        this task, the second half as a new task."""
        rest = res.remaining
        half = (len(rest) + 1) // 2
        first, second = rest[:half], rest[half:]
        if second:
            n = sum(1 for t in self._states if t.startswith(f"{st.spec.task_id}.s")) + 1
            spec = dataclasses.replace(
                st.spec, task_id=f"{st.spec.task_id}.s{n}", nodeids=second, select=None
            )
            self._store.add_tasks(self._run_id, [spec])
            new = TaskState(spec)
            self._states[spec.task_id] = new
            self._submit([new], None)
        # This task's own tests are now what it ran and the first half: a
        # later retry of it must not run the second half's tests too.
        st.spec = dataclasses.replace(st.spec, nodeids=[*st.tests, *first], select=None)
        self._submit([st], first)
