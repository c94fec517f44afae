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

A mixin of :class:`~dtf_core.run.coordinator.Coordinator`; the attributes it
relies on are declared below.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from distributed import Client, Future

from dtf_core import config
from dtf_core.model import AttemptResult, TaskKind, TaskPayload
from dtf_core.run.state import TaskState
from dtf_core.store import Store
from dtf_core.worker import runner


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
    client: Client
    store: Store
    run_id: str
    states: dict[str, TaskState]
    _inflight: dict[str, tuple[Future, list[TaskPayload]]]
    _workers: dict[str, dict[str, Any]]

    # Provided by the Coordinator.
    def _submit(self, states: list[TaskState], only_nodeids: list[str] | None = None) -> None:
        raise NotImplementedError

    def _init_balance(self) -> None:
        self._chunks: dict[str, ChunkProgress] = {}
        self._balance_checked = 0.0
        self._split_min_s = config.seconds("pytest.split-min")

    def _note_progress(self, msg: dict[str, Any]) -> None:
        task_id, attempt = str(msg["task_id"]), int(msg.get("attempt", 0))
        cp = self._chunks.get(task_id)
        if cp is None or cp.attempt != attempt:
            cp = self._chunks[task_id] = ChunkProgress(attempt)
        if "collected" in msg:
            cp.collected, cp.since = int(msg["collected"]), time.monotonic()
        cp.done += sum(int(v) for v in dict(msg.get("counts") or {}).values())

    def _maybe_split(self) -> None:
        """Ask the chunk with the most work ahead to yield, if a thread idles."""
        now = time.monotonic()
        if self._split_min_s <= 0 or now - self._balance_checked < 0.5:
            return
        self._balance_checked = now
        pending = [s for s in self.states.values() if s.final is None]
        threads = sum(int(w.get("nthreads", 1)) for w in self._workers.values())
        if not pending or len(pending) >= threads or any(not s.inflight for s in pending):
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
        attempt = self.states[task_id].attempt
        for key, (_, payloads) in self._inflight.items():
            if any(p.spec.task_id == task_id and p.attempt == attempt for p in payloads):
                # Every worker looks the key up; only the one running it acts.
                with contextlib.suppress(Exception):
                    self.client.run(runner.request_yield, key, on_error="ignore")
                return

    def _split_yielded(self, st: TaskState, res: AttemptResult) -> None:
        """The chunk yielded: its first half of what never started goes on as
        this task, the second half as a new task."""
        rest = res.remaining
        half = (len(rest) + 1) // 2
        first, second = rest[:half], rest[half:]
        if second:
            n = sum(1 for t in self.states if t.startswith(f"{st.spec.task_id}.s")) + 1
            spec = dataclasses.replace(st.spec, task_id=f"{st.spec.task_id}.s{n}", nodeids=second)
            self.store.add_tasks(self.run_id, [spec])
            new = TaskState(spec)
            self.states[spec.task_id] = new
            self._submit([new])
        # This task's own tests are now what it ran and the first half: a
        # later retry of it must not run the second half's tests too.
        st.spec = dataclasses.replace(st.spec, nodeids=[*st.tests, *first])
        self._submit([st], only_nodeids=first)
