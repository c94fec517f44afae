"""Splitting a running pytest chunk when a worker thread has nothing to do.

Chunks are packed from estimates: exact enough with history, rough without
(a first run knows files, not tests or durations). Near the end of a run one
chunk is then often still busy while the other workers idle. The coordinator
watches for that moment: nothing left to start, fewer unfinished tasks than
worker threads, and a running chunk that still has a lot ahead of it (from
its own pace so far). It asks that chunk to yield (``runner.request_yield``):
after its current test pytest cuts the second half of the tests it has not
started (pytest's order: each half keeps its modules together) off its own
list and goes on with the first half in the same process, imports and
fixtures warm. The half it gave away becomes a new task of the run
(``<task>.s<n>``, stored like any other), started as soon as the progress
event says so, or when the chunk's result does if that comes first. The
chunk's task is narrowed to what it kept, so a retry of it (a lost worker)
never runs the given tests too, and a crash resumes only its own. Nothing
runs twice.

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
from dtf_core.model import AttemptResult, TaskKind, TaskSpec
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


def without(spec: TaskSpec, given: set[str]) -> TaskSpec:
    """``spec`` without the node ids in ``given``: named ones are dropped, and
    those of a file it runs whole go to its select's ``drop`` (or leave its
    ``keep``), as :func:`dtf_core.testing.split.assign` shares a file."""
    select = spec.select or {}
    keep = {f: [n for n in ids if n not in given] for f, ids in (select.get("keep") or {}).items()}
    drop = {f: list(ids) for f, ids in (select.get("drop") or {}).items()}
    whole = {t for t in spec.nodeids if "::" not in t}
    for n in sorted(given):
        file = n.partition("::")[0]
        if file in whole and file not in keep:
            drop.setdefault(file, []).append(n)
    nodeids = [t for t in spec.nodeids if t not in given]
    new_select = {"keep": keep, "drop": drop} if keep or drop else None
    return dataclasses.replace(spec, nodeids=nodeids, select=new_select)


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
        stopping: Callable[[], bool] = lambda: False,
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
        self._stopping = stopping
        self._given: dict[tuple[str, int], set[str]] = {}  # (task, attempt) -> started elsewhere
        self._checked = 0.0
        # What a split costs in this run, measured: from submitting the given
        # half to its process having collected (start-up, conftest imports,
        # collecting the given files; it grows with the machine's load).
        self._sent: dict[str, float] = {}  # split task -> monotonic time it was submitted
        self.split_cost_s = 0.0
        self._split_min_s = (
            config.seconds("pytest.split-min") if split_min_s is None else split_min_s
        )

    def note_progress(self, msg: dict[str, Any]) -> None:
        """A running chunk published its counts (and, once, what it collected;
        and the tests it gave away, when it did)."""
        task_id, attempt = str(msg["task_id"]), int(msg.get("attempt", 0))
        cp = self._chunks.get(task_id)
        if cp is None or cp.attempt != attempt:
            cp = self._chunks[task_id] = ChunkProgress(attempt)
        if "collected" in msg:
            cp.collected, cp.since = int(msg["collected"]), time.monotonic()
            sent = self._sent.pop(task_id, None)
            if sent is not None:
                self.split_cost_s = cp.since - sent
        cp.done += sum(int(v) for v in dict(msg.get("counts") or {}).values())
        if msg.get("gave"):
            given = [str(n) for n in msg["gave"]]
            self.give(task_id, attempt, given)
            cp.collected -= len(given)
            cp.asked = False  # it may be asked again, for what it kept

    def give(self, task_id: str, attempt: int, given: list[str]) -> None:
        """Start the tests a running chunk gave away as a new task, once
        (the progress event and the chunk's result both say so)."""
        st = self._states.get(task_id)
        done = self._given.setdefault((task_id, attempt), set())
        new = [n for n in given if n not in done]
        if st is None or not new or self._stopping():
            return  # unknown, already started, or the run stops at its --maxfail
        done.update(new)
        # From the chunk's own spec: the new task has none of its select.
        spec = dataclasses.replace(st.spec, nodeids=new, select=None)
        st.spec = without(st.spec, set(new))
        n = sum(1 for t in self._states if t.startswith(f"{task_id}.s")) + 1
        spec = dataclasses.replace(spec, task_id=f"{task_id}.s{n}")
        self._store.add_tasks(self._run_id, [spec])
        split = TaskState(spec)
        self._states[spec.task_id] = split
        self._sent[spec.task_id] = time.monotonic()
        self._submit([split], None)

    def maybe_split(self) -> None:
        """Ask the chunk with the most work ahead to yield, if a thread idles."""
        now = time.monotonic()
        if self._split_min_s <= 0 or now - self._checked < 0.5:
            return
        self._checked = now
        pending = [s for s in self._states.values() if s.final is None]
        if not pending or len(pending) >= self._threads() or any(not s.inflight for s in pending):
            return  # every thread busy, or work is waiting to start anyway
        # The half given away ends no sooner than what starting it costs after
        # the split: below twice that, the split cannot end the run earlier
        # (networkx under load: a split that gave 3 s of tests cost 16 s).
        least = max(self._split_min_s, 2 * self.split_cost_s)
        best: tuple[float, str] | None = None
        for st in pending:
            cp = self._chunks.get(st.spec.task_id)
            if st.spec.kind is not TaskKind.PYTEST or cp is None or cp.asked:
                continue
            if cp.attempt != st.attempt or not cp.collected:
                continue
            left = cp.seconds_left(now)
            if left >= least and (best is None or left > best[0]):
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
            self._sent[spec.task_id] = time.monotonic()
            self._submit([new], None)
        # This task's own tests are now what it ran and the first half: a
        # later retry of it must not run the second half's tests too.
        st.spec = dataclasses.replace(st.spec, nodeids=[*st.tests, *first], select=None)
        self._submit([st], first)
