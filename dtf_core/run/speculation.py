"""Straggler mitigation: move what waits behind a straggler, copy what runs on one.

Dask's work stealing moves tasks that wait, never one that runs, and it needs
the victim worker to answer: a throttled machine holds the run's tail as long
as it likes. Twice a second (``dtf.speculation.interval``) the :class:`Speculator`

* **moves** the tasks Dask holds, not started, for a worker that is slow or
  quarantined (:mod:`dtf_core.run.monitor`) to workers in good standing; and,
  near the end, a task held behind others on a busy worker to an idle one
  (same attempt, new key: nothing runs twice);
* **copies** a task that has run much longer than expected: more than
  ``factor`` times its expected time and at least ``min-extra`` beyond it
  (expected: its history, else its matrix siblings in this run;
  :mod:`dtf_core.run.pace`), or past its expected time on a slow worker.

Copies and the near-the-end moves wait until no task of the run waits for a
place and a worker in good standing, able to run it, has a free thread. A
copy is the next attempt, pinned to that worker. The first of the two to
*finish* wins: its result goes on as the task's attempt; the other is
cancelled (Dask releases it and the worker's reaper kills its process group)
and stored as a ``cancelled`` attempt naming the winner. A twin that breaks
(cancelled, or an infrastructure failure) is stored as it is and the other
goes on alone. Exactly one result counts.

pytest chunks on healthy workers are left to the chunk balancer
(:mod:`dtf_core.run.balance`), which splits them without running a test twice.
Benchmarks are neither moved nor copied (``kinds``): their numbers must come
from one worker. ``--speculation off`` turns all of this off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dtf_core import config
from dtf_core.errors import Category
from dtf_core.events import AttemptFailed, Event, TaskSpeculated
from dtf_core.model import AttemptResult, TaskKind, TaskPayload
from dtf_core.run.health import HEALTHY, INFRA
from dtf_core.run.monitor import HealthMonitor, Inflight, Started
from dtf_core.run.pace import Pace
from dtf_core.run.state import TaskState, decided_attempt
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store

# copy(states, only_nodeids, workers): submit the next attempt, restricted to workers.
Copy = Callable[..., object]
_BROKEN = INFRA | {Category.SECURITY.value, Category.CANCELLED.value}


@dataclass
class Twin:
    key: str
    attempt: int
    worker: str


@dataclass
class Pair:
    original: Twin
    copy: Twin


class Speculator:
    def __init__(
        self,
        run_id: str,
        states: dict[str, TaskState],
        store: Store,
        pace_: Pace,
        workers: WorkerView,
        monitor: HealthMonitor,
        *,
        copy: Copy,
        move: Callable[[str, list[str] | None], str | None],
        key_of: Callable[[str, int], str | None],
        cancel: Callable[[str], None],
        emit: Callable[[Event], None],
        pinned: set[str],
        enabled: bool,
    ) -> None:
        self._run_id = run_id
        self._states = states
        self._store = store
        self._pace = pace_
        self._view = workers
        self._monitor = monitor
        self._copy = copy
        self._move = move  # the same attempt again under a new key, restricted to workers
        self._key_of = key_of
        self._cancel = cancel  # drop a key from the run's in-flight work and cancel it
        self._emit = emit
        self._pinned = pinned
        self.enabled = enabled
        self.kinds = {TaskKind(k) for k in config.get("speculation.kinds") or ()}
        self.factor = float(config.get("speculation.factor"))
        self.min_extra = config.seconds("speculation.min-extra")
        self.pairs: dict[str, Pair] = {}  # task id -> the two attempts racing
        self._live: dict[str, int] = {}  # task id -> the attempt that goes on (not the last)

    # ---- starting copies -------------------------------------------------------

    def overdue(self, now: float, key: str, s: Started, p: TaskPayload) -> float | None:
        """How far past its expected time a started task is (its elapsed over the
        expected time), if that calls for a copy; None if it does not (yet)."""
        healthy = not self._monitor.unwell(s.worker)
        if p.spec.kind not in self.kinds or (p.spec.kind is TaskKind.PYTEST and healthy):
            return None
        ran = now - s.at
        expected = self._pace.expected(p.spec.task_id, p.spec.name, elsewhere=s.worker)
        if expected is None:
            return ran / self.min_extra if not healthy and ran > self.min_extra else None
        limit = max(self.factor * expected, expected + self.min_extra)
        if ran > limit or (not healthy and ran > expected):
            return ran / expected
        return None

    def tick(
        self,
        now: float,
        started: Mapping[str, Started],
        inflight: Inflight,
        processing: Callable[[], dict[str, list[str]] | None],
    ) -> None:
        self._forget(inflight)
        if not self.enabled or not self.kinds:
            return
        late: dict[str, float] = {}
        for key, s in started.items():
            entry = inflight.get(key)
            if entry is None or len(entry[1]) != 1 or key in self._pinned:
                continue
            if entry[1][0].spec.task_id in self.pairs:
                continue
            score = self.overdue(now, key, s, entry[1][0])
            if score is not None:
                late[key] = score
        unwell = {self._address(n) for n in self._monitor.workers if self._monitor.unwell(n)}
        unwell.discard("")
        threads = sum(int(w.get("nthreads", 1)) for w in self._view.workers.values())
        if not late and not unwell and len(inflight) > 2 * threads:
            return  # mid-run, all well: nothing to ask the scheduler
        assigned = processing()
        if assigned is None:
            return
        where = {k: a for a, keys in assigned.items() for k in keys}
        held = [
            k for k, (_, payloads) in inflight.items()
            if k not in started and k not in self._pinned and len(payloads) == 1
            and payloads[0].spec.kind in self.kinds and payloads[0].spec.task_id not in self.pairs
        ]  # fmt: skip
        self._unblock(held, where, inflight, unwell)
        if any(k not in where for k in inflight):
            return  # work still waits for a place: Dask gives it to the idle workers
        self._place(self._candidates(late, held, where, assigned), inflight, assigned)

    def _address(self, name: str) -> str:
        return next((a for a, w in self._view.workers.items() if w["name"] == name), "")

    def _good(self, requires: dict[str, float], unwell: set[str]) -> list[str]:
        return [
            a for a in self._view.able(requires)
            if a not in unwell and self._view.workers[a]["name"] not in self._view.quarantined
        ]  # fmt: skip

    def _unblock(
        self, held: list[str], where: dict[str, str], inflight: Inflight, unwell: set[str]
    ) -> None:
        """What Dask holds for a slow or quarantined worker and has not started
        goes to the workers in good standing at once: it would wait there
        behind the straggler (Dask's stealing needs the slow worker to answer)."""
        for key in held:
            if where.get(key) in unwell and key in inflight:
                target = self._good(inflight[key][1][0].spec.requires, unwell)
                new = self._move(key, target) if target else None
                if new is not None:
                    self._pinned.add(new)

    def _candidates(
        self,
        late: dict[str, float],
        held: list[str],
        where: dict[str, str],
        assigned: dict[str, list[str]],
    ) -> list[tuple[float, str]]:
        """Late running tasks (most overdue first), then tasks a worker holds
        behind others (its own or a straggler): those move, they do not run twice."""
        behind = {where.get(k) for k in late}
        out = sorted(((score, key) for key, score in late.items()), reverse=True)
        for key in held:
            at = where.get(key)
            if at is None:
                continue
            threads = int(self._view.workers.get(at, {}).get("nthreads", 1))
            if at in behind or len(assigned.get(at, ())) > threads:
                out.append((0.0, key))
        return out

    def _place(
        self,
        candidates: list[tuple[float, str]],
        inflight: Inflight,
        assigned: dict[str, list[str]],
    ) -> None:
        """Each candidate to an idle thread of a worker in good standing."""
        free = {
            a: int(w.get("nthreads", 1)) - len(assigned.get(a, ()))
            for a, w in self._view.workers.items()
            if not self._monitor.unwell(str(w["name"])) and w["name"] not in self._view.distrusted
        }
        where = {k: a for a, keys in assigned.items() for k in keys}
        for score, key in candidates:
            if key not in inflight or not any(n > 0 for n in free.values()):
                continue
            p = inflight[key][1][0]
            able = set(self._view.able(p.spec.requires))
            spots = [a for a, n in free.items() if n > 0 and a != where.get(key) and a in able]
            if not spots:
                continue
            free[spots[0]] -= 1
            if score > 0:
                self._start_copy(key, p, spots[0], where.get(key))
            else:
                new = self._move(key, [spots[0]])
                if new is not None:
                    self._pinned.add(new)

    def _start_copy(self, key: str, p: TaskPayload, target: str, at: str | None) -> None:
        st = self._states[p.spec.task_id]
        if st.final is not None or st.attempt != p.attempt:
            return
        self._copy([st], p.only_nodeids, workers=[target])
        copy_key = self._key_of(p.spec.task_id, st.attempt)
        if copy_key is None:
            return
        self._pinned.add(copy_key)
        names = {a: str(w["name"]) for a, w in self._view.workers.items()}
        straggler = names.get(at or "", "")
        self.pairs[p.spec.task_id] = Pair(
            Twin(key, p.attempt, straggler), Twin(copy_key, st.attempt, names.get(target, target))
        )
        state = self._monitor.state_of(straggler)
        why = "past its expected time" if state == HEALTHY else f"{straggler} is {state}"
        self._emit(
            TaskSpeculated(self._run_id, p.spec.task_id, st.attempt, names.get(target, target),
                           straggler, why)
        )  # fmt: skip

    def _forget(self, inflight: Inflight) -> None:
        for task_id, pair in list(self.pairs.items()):
            if pair.original.key not in inflight and pair.copy.key not in inflight:
                del self.pairs[task_id]
        self._pinned.intersection_update(inflight)

    # ---- the race --------------------------------------------------------------

    def arbitrate(
        self, key: str, results: list[AttemptResult], started: Mapping[str, Started],
        inflight: Inflight,
    ) -> list[AttemptResult]:  # fmt: skip
        """The results of finished Dask task ``key`` that go on to the run loop."""
        out = []
        for res in results:
            pair = self.pairs.get(res.task_id)
            if pair is None or key not in (pair.original.key, pair.copy.key):
                out.append(res)
                continue
            me, twin = (pair.original, pair.copy) if key == pair.original.key else (
                pair.copy, pair.original)  # fmt: skip
            del self.pairs[res.task_id]
            if twin.key not in inflight:
                self._goes_on(res.task_id, res.attempt)  # the twin is gone already
                out.append(res)
            elif res.outcome == "cancelled" or res.category in _BROKEN:
                self._broken(res, twin)
            else:
                self._won(res, me, twin, started.get(twin.key))
                out.append(res)
        return out

    def _broken(self, res: AttemptResult, twin: Twin) -> None:
        """One twin broke: stored as it is; the other is now the task's attempt."""
        self._store.add_attempt(res)
        self._goes_on(res.task_id, twin.attempt)
        message = f"{res.message} (attempt {twin.attempt} on {twin.worker or '?'} goes on)"
        self._emit(
            AttemptFailed(self._run_id, res.task_id, res.attempt, res.category or "cancelled",
                          message, res.worker)
        )  # fmt: skip

    def _won(self, res: AttemptResult, me: Twin, twin: Twin, s: Started | None) -> None:
        self._cancel(twin.key)
        worker = twin.worker or (s.worker if s else "")
        ran = time.monotonic() - s.at if s else 0.0
        which = "copy" if twin.attempt > me.attempt else "original"
        loser = decided_attempt(
            self._run_id, res.task_id, twin.attempt, "cancelled", Category.CANCELLED,
            f"speculative race: the {which} was cancelled, attempt {res.attempt} on "
            f"{res.worker or '?'} finished first",
        )  # fmt: skip
        loser.worker = worker
        if s is not None:
            loser.wall_s, loser.started_at = ran, loser.finished_at - ran
        self._store.add_attempt(loser)
        if s is not None:
            self._monitor.note_cancelled(res.task_id, worker, ran)
        self._goes_on(res.task_id, res.attempt)

    def _goes_on(self, task_id: str, attempt: int) -> None:
        st = self._states.get(task_id)
        if st is not None and attempt != st.attempt:  # the run loop takes only the latest
            self._live[task_id] = attempt

    def accepts(self, res: AttemptResult) -> bool:
        """Whether ``res``, not the task's latest attempt, is the one that counts
        (the original won the race, or its copy broke)."""
        if self._live.get(res.task_id) == res.attempt:
            del self._live[res.task_id]
            return True
        return False
