"""The run loop: submit tasks to Dask, watch them finish, retry, store results.

One Coordinator owns one run queue and one open :class:`~dtf_core.store.Store`.
The loop runs on the calling thread; Dask's done-callbacks only push finished
futures into a queue, so every decision and every database write happens on
one thread (DuckDB has a single writer, and the state needs no locks).

Routing: a task's ``requires`` becomes ``resources=`` on submit. Before
submitting, the coordinator checks that some connected worker has those
resources: Dask would otherwise keep the task waiting forever. A task nobody
can run waits ``unschedulable-timeout`` (0 on the embedded cluster, whose
workers are fixed) and then ends as ``unschedulable``.

Batching: in-process benchmark tasks are tiny next to Dask's ~1 ms per-task
overhead, so they travel in batches (``dtf.batch`` settings); subprocess
tasks (pytest, command) go one per Dask task.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import queue
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

from dtf_core import codeload, config
from dtf_core.cluster import embedded as cluster_mod
from dtf_core.errors import Category, ClusterError, OptionError
from dtf_core.events import (
    AttemptFailed,
    Event,
    Listener,
    RunFinished,
    RunStarted,
    TaskFinished,
    TestsProgress,
)
from dtf_core.model import (
    AttemptResult,
    Suite,
    TaskFinal,
    TaskKind,
    TaskPayload,
)
from dtf_core.run.balance import ChunkBalancer
from dtf_core.run.recovery import SchedulerRecovery
from dtf_core.run.retry import RetryPolicy
from dtf_core.run.state import (
    BAD_TESTS,
    RunResult,
    TaskState,
    decided_attempt,
    exception_of,
    failed_results,
    load_states,
    new_run_id,
    rerun_nodeids,
)
from dtf_core.store import Store
from dtf_core.worker import runner

_OUTCOME_TO_STATUS = {
    "passed": "passed",
    "skipped": "skipped",
    "timed_out": "timed_out",
    "unschedulable": "unschedulable",
    "cancelled": "cancelled",
}


class Coordinator(SchedulerRecovery, ChunkBalancer):
    def __init__(
        self,
        client: Client,
        store: Store,
        *,
        embedded: bool = False,
        policy: RetryPolicy | None = None,
        unschedulable_timeout: float | None = None,
        listeners: list[Listener] | None = None,
        estimates: dict[str, float] | None = None,
        verify: Callable[[AttemptResult], str | None] | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.embedded = embedded
        self.policy = policy or RetryPolicy.from_config()
        if unschedulable_timeout is None:
            unschedulable_timeout = 0.0 if embedded else config.seconds("unschedulable-timeout")
        self.unschedulable_timeout = unschedulable_timeout
        self.listeners = list(listeners or [])
        # Expected seconds per task id (from history): only for the ETA.
        self.estimates = dict(estimates or {})
        self._progress: queue.Queue[dict[str, Any]] = queue.Queue()
        self._done: queue.Queue[Future] = queue.Queue()
        self._inflight: dict[str, tuple[Future, list[TaskPayload]]] = {}
        self._retry_heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._workers: dict[str, dict[str, Any]] = {}
        self._workers_checked = 0.0
        self._known_workers: set[str] = set()  # addresses already in the workers table
        self._hardware_known: set[str] = set()  # worker names whose hardware is stored
        self._cancelled = False
        self._finished = 0
        self._down_since: float | None = None  # the scheduler is gone since then
        self._address: str | None = None
        self.scheduler_wait = config.seconds("scheduler-wait")
        self.run_id = ""
        self.states: dict[str, TaskState] = {}
        self.code_commit = ""  # fresh-code: the run's git commit, stamped on every attempt
        # Result signatures (cluster mode): ``verify`` answers None or why a
        # result is rejected; the workers that sent rejected results get no more work.
        self.verify = verify
        self._distrusted: set[str] = set()
        self._init_balance()

    # ------------------------------------------------------------------ events
    def _emit(self, event: Event) -> None:
        for listener in self.listeners:
            # A broken view must not break the run.
            with contextlib.suppress(Exception):
                listener(event)

    # ------------------------------------------------------------------ public
    def cancel(self) -> None:
        """Ask the loop to stop: in-flight work is cancelled, the rest recorded as cancelled."""
        self._cancelled = True

    def run(
        self, suite: Suite, run_id: str | None = None, metadata: dict | None = None
    ) -> RunResult:
        run_id = run_id or new_run_id()
        started = time.time()
        self.code_commit = str((metadata or {}).get("commit") or "")  # fresh-code
        self.store.create_run(run_id, suite.name, suite.path, metadata or {}, started)
        self.store.add_tasks(run_id, suite.tasks)
        states = {t.task_id: TaskState(t) for t in suite.tasks}
        return self._drive(run_id, suite.name, states, started)

    def resume(self, run_id: str) -> RunResult:
        """Finish a run whose coordinator died: tasks already final stay as they
        are; the rest run again with the next attempt number, so that no stored
        result is lost or written twice."""
        run = self.store.get_run(run_id)
        if run["status"] != "running":
            raise OptionError(f"run {run_id} already ended as {run['status']}: nothing to resume")
        states = load_states(self.store, run_id, self.policy.transient)
        self.code_commit = str((run.get("metadata") or {}).get("commit") or "")  # fresh-code
        return self._drive(run_id, str(run["suite"]), states, time.time())

    def _drive(
        self, run_id: str, suite_name: str, states: dict[str, TaskState], started: float
    ) -> RunResult:
        self.run_id = run_id
        self.states = states
        self._finished = sum(1 for s in states.values() if s.final is not None)
        self._address = self._scheduler_address()
        self._connect_hooks()
        self._refresh_workers(force=True)
        self._emit(RunStarted(run_id, suite_name, len(states), list(self._workers.values())))
        try:
            self._submit_initial([s for s in states.values() if s.final is None])
            self._loop()
        except KeyboardInterrupt:
            self._cancelled = True
        finally:
            if self._cancelled:
                self._cancel_everything()
            self.store.flush()
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic("dtf-tests")
            # fresh-code: the run's suite modules leave long-lived workers (codeload).
            if not self.embedded and self._down_since is None:
                with contextlib.suppress(Exception):
                    self.client.run(codeload.forget, run_id, on_error="ignore")
        finals = [s.final for s in self.states.values() if s.final is not None]
        counts: dict[str, int] = defaultdict(int)
        for f in finals:
            counts[f.status] += 1
        if self._cancelled:
            status = "cancelled"
        elif all(f.status in ("passed", "skipped") for f in finals):
            status = "passed"
        else:
            status = "failed"
        self.store.finish_run(run_id, status, time.time())
        collected = {t: s.collected for t, s in self.states.items() if s.collected is not None}
        result = RunResult(run_id, status, dict(counts), time.time() - started, collected)
        self._emit(RunFinished(run_id, status, dict(counts), result.duration_s))
        return result

    # ------------------------------------------------------------- submission
    def _register_plugins(self) -> None:
        try:
            self.client.register_plugin(runner.ProcessGroupReaper(), name="dtf-reaper")
        except Exception as exc:  # an old worker without dtf installed, say
            raise ClusterError(f"could not install dtf's worker plugin: {exc}") from exc

    def _refresh_workers(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._workers_checked < 1.0:
            return
        self._workers_checked = now
        try:
            self._workers = cluster_mod.current_workers(self.client)
        except ClusterError:
            return  # keep the last view; the health check of the scheduler is elsewhere
        new = [
            {"address": a, **w} for a, w in self._workers.items() if a not in self._known_workers
        ]
        if new:
            self._known_workers.update(w["address"] for w in new)
            self.store.record_workers(
                self.run_id,
                [
                    {
                        "address": w["address"],
                        "name": w["name"],
                        "host": w["host"],
                        "resources": w["resources"],
                        "hardware": {},
                    }
                    for w in new
                ],
            )

    def _record_hardware(self, worker_name: str, info: dict[str, Any]) -> None:
        """Workers report their hardware with their first result: store it once."""
        self._hardware_known.add(worker_name)
        for address, w in self._workers.items():
            if w["name"] == worker_name:
                self.store.record_workers(
                    self.run_id,
                    [
                        {
                            "address": address,
                            "name": w["name"],
                            "host": w["host"],
                            "resources": w["resources"],
                            "hardware": info,
                        }
                    ],
                )

    def _capable(self, requires: dict[str, float]) -> list[dict[str, Any]]:
        return [
            w
            for w in self._workers.values()
            if all(w["resources"].get(k, 0) >= v for k, v in requires.items())
            and w["name"] not in self._distrusted
        ]

    def _submit_initial(self, states: list[TaskState]) -> None:
        ready: list[TaskState] = []
        for st in states:
            if self._capable(st.spec.requires):
                ready.append(st)
            else:
                st.waiting_since = time.monotonic()
        benches: dict[tuple, list[TaskState]] = defaultdict(list)
        for st in ready:
            if st.spec.kind is TaskKind.BENCHMARK:
                benches[tuple(sorted(st.spec.requires.items()))].append(st)
            else:
                self._submit([st])
        for group in benches.values():
            threads = sum(w["nthreads"] for w in self._capable(group[0].spec.requires)) or 1
            n_batches = min(len(group), threads * int(config.get("batch.per-thread")))
            size = max(1, math.ceil(len(group) / max(1, n_batches)))
            size = min(size, int(config.get("batch.max-size")))
            for i in range(0, len(group), size):
                self._submit(group[i : i + size])
        self._expire_waiting()

    def _submit(self, states: list[TaskState], only_nodeids: list[str] | None = None) -> None:
        payloads = []
        for st in states:
            st.attempt += 1
            st.waiting_since = None
            st.inflight = True
            payloads.append(  # fresh-code: + code_commit
                TaskPayload(self.run_id, st.spec, st.attempt, "", only_nodeids, self.code_commit)
            )
        first = states[0]
        if len(states) == 1:
            key = f"dtf-{self.run_id}-{first.spec.task_id}-a{first.attempt}"
        else:
            key = f"dtf-{self.run_id}-batch{next(self._seq)}"
        for p in payloads:
            p.key = key
        fut = self.client.submit(
            runner.execute_batch,
            payloads,
            key=key,
            resources=dict(first.spec.requires) or None,
            workers=self._trusted_addresses(),
            pure=False,
            retries=0,  # dtf decides retries: Dask's retries know nothing of categories
        )
        self._inflight[key] = (fut, payloads)
        fut.add_done_callback(self._done.put)

    # -------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._all_final():
            if self._cancelled:
                return
            if self._down_since is not None:
                self._check_scheduler()
            try:
                fut = self._done.get(timeout=0.1)
            except queue.Empty:
                fut = None
            while fut is not None:
                self._on_done(fut)
                try:
                    fut = self._done.get_nowait()
                except queue.Empty:
                    fut = None
            self._drain_progress()
            if self._down_since is not None:
                # Nothing can be submitted, and nothing is unschedulable, while
                # there is no scheduler.
                if self.store.should_flush():
                    self.store.flush()
                continue
            self._submit_due_retries()
            self._maybe_split()
            if any(s.waiting_since is not None for s in self.states.values()):
                self._refresh_workers()
                self._submit_waiting()
                self._expire_waiting()
            if self.store.should_flush():
                self.store.flush()

    def _on_tests_event(self, event: tuple[float, Any]) -> None:
        # Runs on the client's event loop: hand over, decide nothing here.
        msg = event[1]
        if isinstance(msg, dict) and msg.get("run_id") == self.run_id:
            self._progress.put(msg)

    def _drain_progress(self) -> None:
        while True:
            try:
                msg = self._progress.get_nowait()
            except queue.Empty:
                return
            self._note_progress(msg)
            if msg["counts"]:
                self._emit(TestsProgress(self.run_id, str(msg["task_id"]), dict(msg["counts"])))

    def _eta(self) -> float | None:
        """Seconds left by the estimates, scaled by how the finished ones went."""
        if not self.estimates:
            return None
        done_est = done_real = left = 0.0
        for task_id, st in self.states.items():
            est = self.estimates.get(task_id, 0.0)
            if st.final is None:
                left += est
            else:
                done_est += est
                done_real += st.wall_s
        scale = done_real / done_est if done_est > 0 and done_real > 0 else 1.0
        slots = sum(int(w.get("nthreads", 1)) for w in self._workers.values()) or 1
        return left * scale / slots

    def _all_final(self) -> bool:
        return self._finished >= len(self.states)

    def _on_done(self, fut: Future) -> None:
        entry = self._inflight.pop(str(fut.key), None)
        if entry is None:
            return  # delivered twice (at-least-once): the first one counted
        _, payloads = entry
        if fut.status == "finished":
            try:
                results: list[AttemptResult] = fut.result()
            except Exception as lost:  # result lost in transit
                results = failed_results(payloads, lost)
            else:
                if self.verify is not None:
                    results = [self._verified(r) for r in results]
        else:
            error = exception_of(fut)
            if error is not None and "scheduler-connection-lost" in str(error):
                self._scheduler_lost(payloads, "lost the connection to the scheduler")
                return
            results = failed_results(payloads, error)
        fut.release()
        for res in results:
            self._on_result(res)

    def _on_result(self, res: AttemptResult) -> None:
        st = self.states.get(res.task_id)
        if st is None or st.final is not None or res.attempt != st.attempt:
            return  # a stale duplicate of an attempt already decided
        st.inflight = False
        self.store.add_attempt(res)
        if res.worker_info and res.worker not in self._hardware_known:
            self._record_hardware(res.worker, res.worker_info)
        st.wall_s += res.wall_s
        if res.collected is not None and st.collected is None:
            st.collected = res.collected
        for t in res.tests:
            # Later attempts (reruns, continuations) overlay earlier ones per test;
            # within one attempt a test may report twice (failed + teardown error).
            if t.outcome in BAD_TESTS or st.tests.get(t.nodeid, (0, ""))[0] != res.attempt:
                st.tests[t.nodeid] = (res.attempt, t.outcome)
        if res.yielded and res.remaining and st.spec.kind is TaskKind.PYTEST:
            self._split_yielded(st, res)  # a worker was idle: share what never started
            return
        if res.remaining and st.spec.kind is TaskKind.PYTEST:
            # pytest died mid-chunk (a crash or a per-test timeout): the test that
            # was running is recorded; the ones that never started run now, in a
            # fresh process. Not a retry: nothing is run twice.
            self._submit([st], only_nodeids=res.remaining)
            return
        outcome, category, message = res.outcome, res.category, res.message
        if st.tests and outcome in ("passed", "skipped", "failed"):
            bad = sorted(n for n, (_, o) in st.tests.items() if o in BAD_TESTS)
            if bad:
                outcome, category = "failed", category or Category.TEST_FAILURE.value
                message = f"{len(bad)} test(s) failed, first: {bad[0]}"
            elif outcome == "failed" and category == Category.TEST_FAILURE.value:
                outcome, category = "passed", None  # every failure was rerun and passed
        if outcome in ("passed", "skipped"):
            flaky = st.failed_before and outcome == "passed"
            self._finalize(st, outcome, res, flaky=flaky, message=message)
            return
        category = category or Category.INFRASTRUCTURE.value
        if outcome == "unschedulable" or category == Category.UNSCHEDULABLE.value:
            self._finalize(st, "unschedulable", res, category=category)
            return
        genuine = category in (Category.TEST_FAILURE.value, Category.TIMEOUT.value)
        if self.policy.should_retry(st.spec, category, st.transient_used, st.reruns_used):
            if genuine:
                st.reruns_used += 1
                st.failed_before = True
            else:
                st.transient_used += 1
            delay = self.policy.delay(st.attempt)
            self._emit(
                AttemptFailed(
                    self.run_id, st.spec.task_id, res.attempt, category, message, res.worker, delay
                )
            )
            st.retry_nodeids = rerun_nodeids(st) if genuine else None
            heapq.heappush(
                self._retry_heap, (time.monotonic() + delay, next(self._seq), st.spec.task_id)
            )
            return
        self._emit(
            AttemptFailed(self.run_id, st.spec.task_id, res.attempt, category, message, res.worker)
        )
        status = _OUTCOME_TO_STATUS.get(outcome, "failed")
        if category == Category.CANCELLED.value:
            status = "cancelled"
        self._finalize(st, status, res, category=category, message=message)

    def _submit_due_retries(self) -> None:
        now = time.monotonic()
        while self._retry_heap and self._retry_heap[0][0] <= now:
            _, _, task_id = heapq.heappop(self._retry_heap)
            st = self.states[task_id]
            if st.final is not None:
                continue
            if not self._capable(st.spec.requires):
                self._refresh_workers(force=True)
            if self._capable(st.spec.requires):
                self._submit([st], only_nodeids=st.retry_nodeids)
            else:
                st.waiting_since = time.monotonic()

    def _submit_waiting(self) -> None:
        for st in self.states.values():
            if (
                st.waiting_since is not None
                and st.final is None
                and self._capable(st.spec.requires)
            ):
                self._submit([st], only_nodeids=st.retry_nodeids)

    def _expire_waiting(self) -> None:
        now = time.monotonic()
        for st in self.states.values():
            if st.waiting_since is None or st.final is not None:
                continue
            if now - st.waiting_since < self.unschedulable_timeout:
                continue
            st.attempt += 1
            need = ", ".join(f"{k}={v:g}" for k, v in sorted(st.spec.requires.items()))
            have = (
                "; ".join(
                    f"{w['name']}: "
                    + (", ".join(f"{k}={v:g}" for k, v in sorted(w["resources"].items())) or "none")
                    for w in self._workers.values()
                )
                or "no workers"
            )
            res = decided_attempt(
                self.run_id,
                st.spec.task_id,
                st.attempt,
                "unschedulable",
                Category.UNSCHEDULABLE,
                f"no worker has {need} (workers: {have})",
            )
            st.waiting_since = None
            self.store.add_attempt(res)
            self._emit(
                AttemptFailed(
                    self.run_id, st.spec.task_id, st.attempt, res.category or "", res.message, ""
                )
            )
            self._finalize(st, "unschedulable", res, category=res.category)

    def _finalize(
        self,
        st: TaskState,
        status: str,
        res: AttemptResult,
        *,
        flaky: bool = False,
        category: str | None = None,
        message: str | None = None,
    ) -> None:
        st.final = TaskFinal(
            task_id=st.spec.task_id,
            status=status,
            category=category if status not in ("passed", "skipped") else None,
            message=res.message if message is None else message,
            attempts=st.attempt,
            flaky=flaky,
            wall_s=st.wall_s,
            worker=res.worker,
        )
        self.store.finish_task(self.run_id, st.final)
        self._finished += 1
        done = self._finished
        self._emit(
            TaskFinished(
                self.run_id,
                st.spec.task_id,
                status,
                st.final.category,
                st.final.message,
                st.wall_s,
                res.worker,
                flaky,
                done,
                len(self.states),
                self._eta(),
            )
        )

    def _cancel_everything(self) -> None:
        futures = [f for f, _ in self._inflight.values()]
        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)
        self._inflight.clear()
        for st in self.states.values():
            if st.final is None:
                # The in-flight attempt never reported; a waiting one gets a new number.
                if not st.inflight:
                    st.attempt += 1
                res = decided_attempt(
                    self.run_id,
                    st.spec.task_id,
                    st.attempt,
                    "cancelled",
                    Category.CANCELLED,
                    "the run was cancelled",
                )
                self.store.add_attempt(res)
                self._finalize(st, "cancelled", res, category=Category.CANCELLED.value)

    # ------------------------------------------------------ result signatures
    def _verified(self, res: AttemptResult) -> AttemptResult:
        """``res`` if its signature holds; else a failed attempt of category
        ``security`` (retried under the task's ``retries``, on other workers)."""
        assert self.verify is not None
        reason = self.verify(res)
        if reason is None:
            return res
        # The name is what the result claims: a forger can only get an honest
        # worker distrusted (denial of service), never get a result accepted.
        self._distrusted.add(res.worker)
        return AttemptResult(
            run_id=res.run_id, task_id=res.task_id, attempt=res.attempt, outcome="error",
            category=Category.SECURITY.value,
            message=f"result rejected: {reason}; no more work goes to worker {res.worker!r}",
            worker=res.worker, started_at=res.started_at, finished_at=time.time(),
        )  # fmt: skip

    def _trusted_addresses(self) -> list[str] | None:
        """Restrict placement once some worker is distrusted (Dask has no "not there")."""
        if not self._distrusted:
            return None
        return [a for a, w in self._workers.items() if w["name"] not in self._distrusted]
