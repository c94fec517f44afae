"""The health of a run's workers, watched: facts gathered, judged, stored, acted on.

Once a second (``dtf.health.interval``) the :class:`HealthMonitor` folds in
what the workers sampled (riding the heartbeats, :mod:`dtf_core.worker.health`),
how their finished and running tasks compare with the same tasks elsewhere
(:mod:`dtf_core.run.pace`), and asks :func:`dtf_core.run.health.judge` for
each worker's state. A change is announced (``WorkerHealthChanged``), stored
(``worker_health``, with a row per worker every ``store-interval`` besides)
and left on the scheduler for ``dtf-core workers --scheduler``.

Quarantine acts on placement: the worker leaves :attr:`WorkerView.placement
<dtf_core.run.workers.WorkerView.placement>`, and the run's tasks that have not
started and that Dask holds for it, or has not placed yet, are moved (same
attempt, new key) to the others. (A worker that is slow but not quarantined
keeps getting new work; what Dask holds for it behind its straggler is moved
by :mod:`dtf_core.run.speculation`.) After ``probation-after`` it is given one
task that has not started; passing at its peers' pace releases it (the moved
tasks may then go anywhere again), anything else doubles the wait.

A part the :class:`~dtf_core.run.adaptive.Adaptive` owns, handed the run's
task states, the store, the view of the workers and a way to move a task.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dtf_core import config
from dtf_core.events import Event, WorkerHealthChanged
from dtf_core.model import AttemptResult, TaskKind, TaskPayload
from dtf_core.run.health import (
    HEALTHY,
    INFRA,
    QUARANTINED,
    HealthPolicy,
    Observation,
    WorkerFacts,
    judge,
    pace,
    slowness,
)
from dtf_core.run.pace import Pace
from dtf_core.run.state import TaskState
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store

log = logging.getLogger(__name__)

OBSERVATIONS = 20  # a worker's recent tasks its pace is the median of
# Tasks moved per look, and seconds spent moving them (a cancel and a submit
# each, on the run loop's thread): a queue of 1500 moved at once held up the
# recording of results for minutes on a loaded machine (test bed, issue 17).
REHOME_PER_LOOK, REHOME_S = 100, 0.2
Inflight = Mapping[str, tuple[Any, list[TaskPayload]]]
# move(key, workers): submit that in-flight Dask task again, same attempt,
# restricted to ``workers`` (None: anywhere); answers the new key, or None.
Move = Callable[[str, list[str] | None], str | None]


@dataclass
class Started:
    """A Dask task of the run that began on a worker (``dtf-started``)."""

    worker: str
    address: str
    at: float  # monotonic, on arrival here


@dataclass
class WorkerWatch:
    name: str
    address: str = ""
    state: str = HEALTHY
    reason: str = ""
    since: float = field(default_factory=time.time)
    calm_since: float | None = None
    observations: deque[Observation] = field(default_factory=lambda: deque(maxlen=OBSERVATIONS))
    infra_streak: int = 0
    last_infra: str = ""
    sample: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0
    seen_at: float | None = None  # monotonic time last_seen last moved
    baseline: float | None = None
    rel_speed: float | None = None
    slow: bool = False  # its pace is past slow-factor now
    stored_at: float = -1e9
    recorded: bool = False  # its first row marks when it entered its state
    probation: tuple[str, int] | None = None  # (task id, attempt) on probation there
    probation_due: float = 0.0
    probation_wait: float = 0.0


class HealthMonitor:
    def __init__(
        self,
        run_id: str,
        states: dict[str, TaskState],
        store: Store,
        workers: WorkerView,
        pace_: Pace,
        *,
        emit: Callable[[Event], None],
        publish: Callable[[str, dict[str, Any]], None],
        move: Move,
        pinned: set[str],
        policy: HealthPolicy | None = None,
    ) -> None:
        self._run_id = run_id
        self._states = states
        self._store = store
        self._view = workers
        self._pace = pace_
        self._emit = emit
        self._publish = publish
        self._move = move
        self._pinned = pinned  # keys placed on purpose (copies, probation): never moved
        self.policy = policy or HealthPolicy.from_config()
        self.workers: dict[str, WorkerWatch] = {}  # by worker name
        self._moved: set[str] = set()  # keys moved off quarantined workers
        self._store_every = config.seconds("health.store-interval")
        self.urgent = False  # a result calls for a judgement before the next look
        self._migrate = False  # placement changed: move what has not started
        self._released = False  # ... and a worker came out of quarantine

    # ---- what happened ---------------------------------------------------------

    def watch(self, name: str) -> WorkerWatch:
        w = self.workers.get(name)
        if w is None:
            w = self.workers[name] = WorkerWatch(name)
            try:
                w.baseline = self._store.worker_baselines([name], self._run_id).get(name)
            except Exception:
                log.debug("reading the health history of %s failed", name, exc_info=True)
        return w

    def note_result(self, res: AttemptResult, worker: str) -> None:
        """An attempt ended on ``worker`` (its name; results of a lost worker have none)."""
        if not worker or res.outcome == "cancelled":
            return
        w = self.watch(worker)
        st = self._states.get(res.task_id)
        name = st.spec.name if st is not None else res.task_id
        expected = self._pace.expected(res.task_id, name, elsewhere=worker)
        if res.outcome == "passed":
            self._pace.note(res.task_id, name, worker, res.wall_s)
        if res.category in INFRA:
            w.infra_streak += 1
            w.last_infra = (res.message or res.category or "").splitlines()[0][:160]
            # Judge now, not at the next look: its next task would fail the same way.
            self.urgent |= w.infra_streak >= self.policy.infra_streak and w.state != QUARANTINED
        else:
            w.infra_streak = 0  # the worker did its part: a test failing is the test's
            if expected and res.wall_s > 0 and res.outcome in ("passed", "timed_out"):
                timed_out = res.outcome == "timed_out"  # a lower bound
                w.observations.append(
                    Observation(res.task_id, res.wall_s / expected, res.wall_s, expected, timed_out)
                )
        if w.probation == (res.task_id, res.attempt):
            self._judge_probation(w, res, expected)

    def stranded(self, task_id: str, attempt: int) -> None:
        """That attempt waited for workers that left the cluster: a probation
        with it has failed (its worker is gone; it runs elsewhere now)."""
        for w in self.workers.values():
            if w.probation == (task_id, attempt):
                self._probation_failed(w, task_id, "its worker left the cluster")

    def note_cancelled(self, task_id: str, worker: str, seconds: float) -> None:
        """A copy finished first; the attempt on ``worker`` had run ``seconds``."""
        st = self._states.get(task_id)
        expected = self._pace.expected(task_id, st.spec.name if st else task_id, worker)
        if worker and expected and seconds > expected:
            self.watch(worker).observations.append(
                Observation(task_id, seconds / expected, seconds, expected, running=True)
            )

    # ---- judging ---------------------------------------------------------------

    def tick(
        self,
        now: float,
        started: Mapping[str, Started],
        inflight: Inflight,
        processing: Callable[[], dict[str, list[str]] | None],
    ) -> None:
        self.urgent = False
        self._sync(now)
        running = self.running_observations(now, started, inflight)
        facts = {n: self._facts(w, now, running.get(n, [])) for n, w in self.workers.items()}
        peers = {n: p for n, f in facts.items() if (p := pace(f.observations)) is not None}
        for n, w in self.workers.items():
            f = facts[n]
            slow = slowness(f, peers, self.policy)
            w.rel_speed = slow.pace if slow else None
            # Slow from slow-factor on, and until below recover-factor (no flapping).
            bar = self.policy.recover_factor if w.slow else self.policy.slow_factor
            w.slow = slow is not None and slow.beyond(bar)
            v = judge(w.state, f, peers, self.policy, now=now, calm_since=w.calm_since,
                      reason=w.reason)  # fmt: skip
            w.calm_since = v.calm_since
            if v.state != w.state:
                self._change(w, v.state, v.reason, now)
            else:
                w.reason = v.reason
        self._store_rows(now)
        self._act(now, started, inflight, processing)

    def running_observations(
        self, now: float, started: Mapping[str, Started], inflight: Inflight
    ) -> dict[str, list[Observation]]:
        """Tasks still running past their expected time, by worker: lower bounds."""
        out: dict[str, list[Observation]] = {}
        for key, s in started.items():
            entry = inflight.get(key)
            if entry is None or len(entry[1]) != 1:
                continue
            p = entry[1][0]
            expected = self._pace.expected(p.spec.task_id, p.spec.name, elsewhere=s.worker)
            ran = now - s.at
            if expected and ran > expected:
                ob = Observation(p.spec.task_id, ran / expected, ran, expected, running=True)
                out.setdefault(s.worker, []).append(ob)
        return out

    def _facts(self, w: WorkerWatch, now: float, running: list[Observation]) -> WorkerFacts:
        age = None if w.seen_at is None else now - w.seen_at
        return WorkerFacts(
            w.name, [*w.observations, *running], w.infra_streak, w.last_infra, age, w.sample,
            w.baseline,
        )  # fmt: skip

    def _sync(self, now: float) -> None:
        """Fold in what the scheduler said last about each connected worker."""
        for address, info in self._view.workers.items():
            w = self.watch(str(info["name"]))
            w.address = address
            w.sample = dict(info.get("sample") or {})
            seen = float(info.get("last_seen") or 0.0)
            if seen != w.last_seen or w.seen_at is None:
                w.last_seen, w.seen_at = seen, now

    def _change(self, w: WorkerWatch, state: str, reason: str, now: float) -> None:
        previous = w.state
        w.state, w.reason, w.since = state, reason, time.time()
        if state == QUARANTINED:
            self._view.quarantined.add(w.name)
            w.probation_wait = self.policy.probation_after
            w.probation_due, w.probation = now + w.probation_wait, None
            self._migrate = True
        elif previous == QUARANTINED:
            self._view.quarantined.discard(w.name)
            self._migrate = self._released = True  # what was moved away may go back
        log.info("worker %s %s: %s", w.name, state, reason)
        self._emit(WorkerHealthChanged(self._run_id, w.name, w.address, state, reason, previous))
        self._store.add_health([self._row(w, changed=True)])
        w.stored_at = now
        try:
            self._publish(w.name, {"state": state, "reason": reason, "since": w.since,
                                   "run_id": self._run_id})  # fmt: skip
        except Exception:
            log.debug("publishing the health of %s failed", w.name, exc_info=True)

    def _judge_probation(self, w: WorkerWatch, res: AttemptResult, expected: float | None) -> None:
        w.probation = None
        if w.state != QUARANTINED:
            return
        slow = expected is not None and res.wall_s >= self.policy.slow_factor * expected
        if res.outcome == "passed" and not slow:
            took = f" in {res.wall_s:.2f} s" if res.wall_s else ""
            w.observations.clear()  # judged afresh from here
            w.infra_streak = 0
            self._change(w, HEALTHY, f"released: probation task {res.task_id} passed{took}",
                         time.monotonic())  # fmt: skip
            return
        why = f"took {res.wall_s:.1f} s, expected {expected:.2f} s" if slow else res.outcome
        self._probation_failed(w, res.task_id, why)

    def _probation_failed(self, w: WorkerWatch, task_id: str, why: str) -> None:
        w.probation = None
        w.probation_wait *= 2
        w.probation_due = time.monotonic() + w.probation_wait
        w.reason = f"{w.reason.split('; probation')[0]}; probation task {task_id}: {why}"

    # ---- acting ----------------------------------------------------------------

    def _act(
        self,
        now: float,
        started: Mapping[str, Started],
        inflight: Inflight,
        processing: Callable[[], dict[str, list[str]] | None],
    ) -> None:
        running = {(p.spec.task_id, p.attempt) for _, ps in inflight.values() for p in ps}
        for w in self.workers.values():
            if w.probation is not None and w.probation not in running:
                # Gone without a result (a copy won the race, the worker was lost): failed.
                self._probation_failed(w, w.probation[0], "did not finish")
        due = [
            w for w in self.workers.values()
            if w.state == QUARANTINED and w.probation is None and now >= w.probation_due
            and w.address in self._view.workers
        ]  # fmt: skip
        if not self._migrate and not due:
            return
        assigned = processing()
        if assigned is None:
            return  # the scheduler did not answer: next time
        where = {k: a for a, keys in assigned.items() for k in keys}
        waiting = [
            k for k, (_, payloads) in inflight.items()
            if k not in started and k not in self._pinned and payloads
        ]  # fmt: skip
        if self._migrate:
            self._migrate = False
            self._rehome(waiting, where, inflight)
        for w in due:
            self._give_probation(w, waiting, where, inflight)

    def _rehome(self, waiting: list[str], where: dict[str, str], inflight: Inflight) -> None:
        """Tasks that have not started go where placement now says: off the
        quarantined workers (unplaced, or held there), and, once one is
        released, the ones moved earlier go where placement now allows."""
        released, self._released = self._released, False
        bad = {a for a, i in self._view.workers.items() if i["name"] in self._view.quarantined}
        budget, until = REHOME_PER_LOOK, time.monotonic() + REHOME_S
        for key in waiting:
            target = self._view.placement(inflight[key][1][0].spec.requires)
            at = where.get(key)
            held = self._view.held.get(key)
            if (held and target and set(held) == set(target)) or (held is None and target is None):
                continue  # already restricted as placement says now (moved before)
            if released and key in self._moved:
                pass  # restricted while some worker was quarantined: placement has changed
            elif not bad or (at is not None and at not in bad):
                continue  # nobody to avoid, or held by a worker in good standing
            elif target is not None and at is not None and at in target:
                continue  # every worker able to run it is quarantined: it stays
            if budget == 0 or time.monotonic() > until:  # the rest at the next look
                self._migrate, self._released = True, released
                return
            budget -= 1
            new = self._move(key, target)
            self._moved.discard(key)
            if new is not None and target is not None:
                self._moved.add(new)

    def _give_probation(
        self, w: WorkerWatch, waiting: list[str], where: dict[str, str], inflight: Inflight
    ) -> None:
        info = self._view.workers.get(w.address) or {}
        have = info.get("resources") or {}
        fits = [
            k for k in waiting
            if k in inflight and len(inflight[k][1]) == 1
            and inflight[k][1][0].spec.kind is not TaskKind.BENCHMARK
            and all(have.get(r, 0) >= v for r, v in inflight[k][1][0].spec.requires.items())
        ]  # fmt: skip
        if not fits:
            return  # nothing left to try it with; at the next due time maybe
        key = min(fits, key=lambda k: where.get(k) is not None)  # unplaced first
        p = inflight[key][1][0]
        new = self._move(key, [w.address])
        if new is None:
            return
        self._pinned.add(new)
        self._moved.discard(key)
        w.probation = (p.spec.task_id, p.attempt)
        log.info("worker %s: probation with %s", w.name, p.spec.task_id)

    # ---- storing ---------------------------------------------------------------

    def _store_rows(self, now: float) -> None:
        rows = []
        for w in self.workers.values():
            if now - w.stored_at >= self._store_every:
                w.stored_at = now
                rows.append(self._row(w, changed=False))
        if rows:
            self._store.add_health(rows)

    def _row(self, w: WorkerWatch, changed: bool) -> dict[str, Any]:
        changed, w.recorded = changed or not w.recorded, True
        s = w.sample
        age = None if w.seen_at is None else time.monotonic() - w.seen_at
        return {
            "run_id": self._run_id, "worker": w.name, "address": w.address, "ts": time.time(),
            "state": w.state, "reason": w.reason, "changed": changed, "rel_speed": w.rel_speed,
            "tasks": len(w.observations), "cpu_pct": s.get("cpu_pct"),
            "mem_pct": s.get("mem_pct"), "load1": s.get("load1"), "ncpu": s.get("ncpu"),
            "disk_free_bytes": s.get("disk_free_bytes"), "heartbeat_age": age,
            "gpus": s.get("gpus"),
        }  # fmt: skip

    def close(self) -> None:
        """The run ended: a last row per worker, its state as the run left it."""
        rows = [self._row(w, changed=False) for w in self.workers.values()]
        if rows:
            self._store.add_health(rows)

    def state_of(self, name: str) -> str:
        w = self.workers.get(name)
        return w.state if w is not None else HEALTHY

    def unwell(self, name: str) -> bool:
        """Quarantined, or running slow: its tasks may be copied, it gets no copies."""
        w = self.workers.get(name)
        return w is not None and (w.state == QUARANTINED or w.slow)
