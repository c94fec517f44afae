"""The run loop: submit tasks to Dask, watch them finish, retry, store results.

One Coordinator owns one run queue and one open :class:`~dtf_core.store.Store`.
The loop runs on the calling thread; Dask's done-callbacks only push finished
futures into a queue, and their results are fetched off this thread
(:mod:`~dtf_core.run.fetch`: a vanished host holds up only its own results),
so every decision and every database write happens on one thread that never
waits for a transfer (DuckDB has a single writer, and the state needs no locks).

Routing: a task's ``requires`` becomes ``resources=`` on submit. Before
submitting, the coordinator checks that some connected worker has those
resources: Dask would otherwise keep the task waiting forever. A task nobody
can run waits ``unschedulable-timeout`` (0 on the embedded cluster, whose
workers are fixed) and then ends as ``unschedulable``.

Batching (:mod:`~dtf_core.run.batching`): in-process benchmarks travel in
batches, subprocess tasks one per Dask task. Priorities: each Dask task carries
the run's and its task's priority (:mod:`~dtf_core.run.priority`).

Parts: the loop keeps the I/O (Dask, DuckDB, events) and owns, one per run,
the parts it hands explicitly what they need: :class:`~dtf_core.run.workers.WorkerView`
(routing, hardware, distrusted workers), :class:`~dtf_core.run.recovery.SchedulerRecovery`
(a lost scheduler) and :class:`~dtf_core.run.balance.ChunkBalancer` (splitting a
running pytest chunk) and :class:`~dtf_core.run.adaptive.Adaptive` (worker
health, quarantine, speculative copies of stragglers). What a finished attempt
leads to is decided by the pure :func:`~dtf_core.run.decisions.decide`; the
loop applies the answer.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

from dtf_core import codeload, config
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
from dtf_core.model import AttemptResult, Suite, TaskPayload
from dtf_core.run import batching, decisions, eta, intake, stopping, topics
from dtf_core.run.adaptive import Adaptive
from dtf_core.run.balance import ChunkBalancer
from dtf_core.run.fetch import Fetched, ResultFetcher
from dtf_core.run.maxfail import FailureLimit
from dtf_core.run.priority import dask_priority, of_metadata
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
)
from dtf_core.run.waiting import WaitingTasks
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store
from dtf_core.worker import runner

__all__ = ["Coordinator", "RunResult"]

log = logging.getLogger(__name__)


class Coordinator:
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
        max_failures: int | None = None,
        priority: int = 0,
        speculation: bool | None = None,
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
        self.scheduler_wait = config.seconds("scheduler-wait")
        self.code_commit = ""  # the run's git commit, stamped on every attempt
        # Result signatures (cluster mode): ``verify`` answers None or why a
        # result is rejected; the workers that sent rejected results get no more work.
        self.verify = verify
        self._progress: queue.Queue[dict[str, Any]] = queue.Queue()
        self._done: queue.Queue[Future | None] = queue.Queue()  # None: a fetch came back
        self._inflight: dict[str, tuple[Future, list[TaskPayload]]] = {}
        self._seq = itertools.count()
        self._cancelled = False
        # -x / --maxfail N over the whole run (None: never stop early).
        self.max_failures = max_failures
        self.priority = priority  # the run's, over other runs (dtf_core.run.priority)
        self._stopping = False
        self._detach = stopping.Detach()  # an orderly stop asked for (detach)
        self._finished = 0
        self.run_id = ""
        self.states: dict[str, TaskState] = {}
        # Copies of stragglers: this, else the suite's [dtf] speculation, else dtf.speculation.
        self.speculation = speculation
        self._settings: dict[str, Any] = {}

    def _start_parts(self) -> None:
        """The parts of the loop, fresh for the run in ``run_id`` / ``states``."""
        self._workers = WorkerView(self.store, self.run_id)
        rpc = self.client.scheduler
        self._recovery = SchedulerRecovery(
            self.run_id, self.states, self.store, self._workers,
            emit=self._emit, end=self._end, connect=self._connect_hooks,
            address=str(rpc.address) if rpc is not None else None,
            embedded=self.embedded, wait=self.scheduler_wait,
        )  # fmt: skip
        self._balancer = ChunkBalancer(
            self.run_id, self.states, self.store,
            threads=self._workers.threads, key_of=self._key_of, ask_yield=self._ask_yield,
            submit=self._submit, stopping=lambda: self._stopping,
        )  # fmt: skip
        self._limit = FailureLimit(self.max_failures)
        self._eta = eta.Eta(self.states, self.estimates)  # O(1) per finished task
        self._stopping = False
        self._fetcher = ResultFetcher(lambda: self.client, wake=lambda: self._done.put(None))
        self._waiting = WaitingTasks(
            self.states, self._workers, refresh=self._refresh_now, submit=self._submit,
            end=self._end, timeout=self.unschedulable_timeout,
        )  # fmt: skip
        self._adaptive = Adaptive(
            self.run_id, self.states, self.store, self._workers, inflight=self._inflight,
            client=lambda: self.client, copy=self._submit, send=self._send, key_of=self._key_of,
            emit=self._emit, speculation=(self.speculation, self._settings.get("speculation")),
            stopping=lambda: self._stopping or self._detach.asked,
        )  # fmt: skip

    def _refresh_now(self) -> None:
        self._workers.refresh(self.client, force=True)

    # ------------------------------------------------------------------ events
    def _emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken view must not break the run
                log.debug("listener %r failed on %s", listener, type(event).__name__, exc_info=True)

    # ------------------------------------------------------------------ public
    def cancel(self) -> None:
        """Ask the loop to stop: in-flight work is cancelled, the rest recorded as cancelled."""
        self._cancelled = True

    def detach(self, grace: float = 0.0) -> None:
        """Stop without ending the run (an orderly stop of ``serve``): nothing new
        starts, what runs may finish within ``grace`` s and is recorded, and the
        run stays open for :meth:`resume` by the next coordinator (run/stopping.py)."""
        self._detach.ask(grace)

    def run(
        self, suite: Suite, run_id: str | None = None, metadata: dict | None = None
    ) -> RunResult:
        run_id = run_id or new_run_id()
        started = time.time()
        self.code_commit = str((metadata or {}).get("commit") or "")
        self._settings = dict(suite.settings)
        if self.priority:  # stored, so that --resume schedules it the same
            metadata = {**(metadata or {}), "priority": self.priority}
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
        self.code_commit = str((run.get("metadata") or {}).get("commit") or "")
        self.priority = self.priority or of_metadata(run.get("metadata"))
        return self._drive(run_id, str(run["suite"]), states, time.time())

    def _drive(
        self, run_id: str, suite_name: str, states: dict[str, TaskState], started: float
    ) -> RunResult:
        self.run_id = run_id
        self.states = states
        self._finished = sum(1 for s in states.values() if s.final is not None)
        self._start_parts()
        self._connect_hooks(self.client)
        self._workers.refresh(self.client, force=True)
        self._emit(
            RunStarted(run_id, suite_name, len(states), list(self._workers.workers.values()))
        )
        try:
            self._submit_initial([s for s in states.values() if s.final is None])
            self._loop()
        except KeyboardInterrupt:
            self._cancelled = True
        finally:
            if self._cancelled or self._detach.asked:
                stopping.release(self.client, self._inflight, force=self._cancelled)
            if self._cancelled:
                stopping.end_cancelled(self.states, self._end)
            self._fetcher.close()
            self._adaptive.close()
            self.store.flush()
            topics.unroute(self.client, "dtf-tests", run_id)
            # The run's suite modules leave long-lived workers (codeload).
            if not self.embedded and not self._recovery.down:
                try:
                    self.client.run(codeload.forget, run_id, on_error="ignore")
                except Exception:
                    log.debug(
                        "dropping run %s's modules on the workers failed", run_id, exc_info=True
                    )
        if self._detach.asked and not self._all_final():  # left open: no end
            return RunResult(run_id, "running", {}, time.time() - started)
        status, counts = decisions.run_status(
            (s.final for s in self.states.values() if s.final is not None), self._cancelled
        )
        self.store.finish_run(run_id, status, time.time())
        collected = {t: s.collected for t, s in self.states.items() if s.collected is not None}
        result = RunResult(run_id, status, counts, time.time() - started, collected)
        self._emit(RunFinished(run_id, status, dict(counts), result.duration_s))
        return result

    # ------------------------------------------------------------- submission
    def _connect_hooks(self, client: Client) -> None:
        """What a (re)started scheduler must be told: the worker plugin, and the
        subscription to the per-test counts running pytest tasks publish."""
        try:
            client.register_plugin(runner.ProcessGroupReaper(), name="dtf-reaper")
            self._adaptive.connect(client)
        except Exception as exc:  # an old worker without dtf installed, say
            raise ClusterError(f"could not install dtf's worker plugin: {exc}") from exc
        topics.route(client, "dtf-tests", self.run_id, self._progress.put)

    def _submit_initial(self, states: list[TaskState]) -> None:
        ready: list[TaskState] = []
        for st in states:
            if self._workers.capable(st.spec.requires):
                ready.append(st)
            else:
                st.waiting_since = time.monotonic()
        capable = self._workers.capable
        for group in batching.plan(ready, lambda req: sum(w["nthreads"] for w in capable(req))):
            self._submit(group)
        self._waiting.expire()

    def _submit(
        self,
        states: list[TaskState],
        only_nodeids: list[str] | None = None,
        workers: list[str] | None = None,
    ) -> None:
        if self._detach.asked:
            return  # detaching: the next coordinator starts it (resume)
        payloads = []
        for st in states:
            st.attempt += 1
            st.waiting_since = None
            st.inflight = True
            payloads.append(
                TaskPayload(self.run_id, st.spec, st.attempt, "", only_nodeids, self.code_commit)
            )
        first = states[0]
        if len(states) == 1:
            key = f"dtf-{self.run_id}-{first.spec.task_id}-a{first.attempt}"
        else:
            key = f"dtf-{self.run_id}-batch{next(self._seq)}"
        self._send(key, payloads, workers or self._workers.placement(first.spec.requires))

    def _send(self, key: str, payloads: list[TaskPayload], workers: list[str] | None) -> None:
        for p in payloads:
            p.key = key
        spec = payloads[0].spec
        fut = self.client.submit(
            runner.execute_batch_plain,
            payloads,
            key=key,
            resources=dict(spec.requires) or None,
            workers=workers,
            priority=dask_priority(self.priority, spec.priority),
            pure=False,
            retries=0,  # dtf decides retries: Dask's retries know nothing of categories
        )
        self._inflight[key] = (fut, payloads)
        self._workers.hold(key, workers)
        fut.add_done_callback(self._done.put)

    def _key_of(self, task_id: str, attempt: int) -> str | None:
        """The Dask key of a task's in-flight attempt (a batch's key for a batched one)."""
        for key, (_, payloads) in self._inflight.items():
            if any(p.spec.task_id == task_id and p.attempt == attempt for p in payloads):
                return key
        return None

    def _ask_yield(self, key: str) -> bool:
        """Ask the pytest chunk running for ``key`` to stop after its current
        test; False if no worker is running it (yet)."""
        # Every worker looks the key up; only the one running it acts.
        try:
            answers = self.client.run(runner.request_yield, key, on_error="ignore")
        except Exception:
            log.debug("asking the workers to yield %s failed", key, exc_info=True)
            return False
        return any(answers.values())

    # -------------------------------------------------------------- the loop
    def _loop(self) -> None:
        while not self._all_final():
            if self._cancelled or self._detach.done(self.client, self._inflight):
                return
            if self._recovery.down:
                self.client = self._recovery.poll(self.client)
            try:
                fut = self._done.get(timeout=0.1)
            except queue.Empty:
                fut = None
            while fut is not None:
                self._fetcher.fetch(fut)  # never waits: what it fetched comes back in poll()
                try:
                    fut = self._done.get_nowait()
                except queue.Empty:
                    fut = None
            for got in self._fetcher.poll():
                self._on_fetched(got)
            self._drain_progress()
            if self._recovery.down:
                # Nothing can be submitted, and nothing is unschedulable, while
                # there is no scheduler.
                if self.store.should_flush():
                    self.store.flush()
                continue
            self._waiting.submit_due()
            self._adaptive.tick()
            self._balancer.maybe_split()
            if self._waiting.any_waiting():
                self._workers.refresh(self.client)
                self._waiting.submit_ready()
                self._waiting.expire()
            if self.store.should_flush():
                self.store.flush()

    def _drain_progress(self) -> None:
        while True:
            try:
                msg = self._progress.get_nowait()
            except queue.Empty:
                break
            self._balancer.note_progress(msg)
            if msg["counts"]:
                self._emit(TestsProgress(self.run_id, str(msg["task_id"]), dict(msg["counts"])))
                self._limit.note_stream(str(msg["task_id"]), msg["counts"])
        self._stop_at_failure_limit()

    def _all_final(self) -> bool:
        return self._finished >= len(self.states)

    def _on_fetched(self, got: Fetched) -> None:
        fut = got.future
        entry = self._inflight.pop(str(fut.key), None)
        if entry is None:
            return  # delivered twice (at-least-once), or cancelled meanwhile
        _, payloads = entry
        if got.finished:
            # Plain data, rebuilt and checked: a crafted result is a security failure.
            results = intake.results_of(got, payloads, self._workers, self.verify)
        else:
            error = exception_of(fut)
            if error is not None and "scheduler-connection-lost" in str(error):
                self._recovery.lost(payloads, "lost the connection to the scheduler")
                return
            results = failed_results(payloads, error)
        fut.release()
        for res in self._adaptive.arbitrate(str(fut.key), results):  # speculative races
            self._on_result(res)

    def _on_result(self, res: AttemptResult) -> None:
        st = self.states.get(res.task_id)
        if st is None or st.final is not None:
            return
        if res.attempt != st.attempt and not self._adaptive.accepts(res):
            return  # a stale duplicate of an attempt already decided
        self.store.add_attempt(res)
        self._workers.record_hardware(res)
        st.record(res)
        if res.given:  # normally started already, from the chunk's progress event
            self._balancer.give(st.spec.task_id, res.attempt, res.given)
        decision = decisions.decide(st, res, self.policy, stopping=self._stopping)
        if isinstance(decision, decisions.Split):
            self._balancer.split_yielded(st, res)  # a worker was idle: share what never started
        elif isinstance(decision, decisions.Continue):
            # pytest died mid-chunk (a crash or a per-test timeout): the test that
            # was running is recorded; the ones that never started run now, in a
            # fresh process. Not a retry: nothing is run twice.
            self._submit([st], only_nodeids=decision.nodeids)
        elif isinstance(decision, decisions.Retry):
            decisions.charge(st, decision)
            self._emit(
                AttemptFailed(
                    self.run_id, st.spec.task_id, res.attempt, decision.category,
                    decision.message, res.worker, decision.delay,
                )
            )  # fmt: skip
            self._waiting.retry_after(st.spec.task_id, decision.delay)
        else:
            if decision.failed_attempt:  # not retried
                self._emit(
                    AttemptFailed(
                        self.run_id, st.spec.task_id, res.attempt, decision.category or "",
                        decision.message, res.worker,
                    )
                )  # fmt: skip
            self._finalize(
                st, decision.status, res,
                flaky=decision.flaky, category=decision.category, message=decision.message,
            )  # fmt: skip

    def _end(
        self, st: TaskState, status: str, category: Category, message: str, announce: bool = False
    ) -> None:
        """End a task with an attempt the coordinator decided itself (no worker
        result to go by): cancelled, unschedulable, no scheduler."""
        outcome = "error" if status == "failed" else status
        res = decided_attempt(self.run_id, st.spec.task_id, st.attempt, outcome, category, message)
        self.store.add_attempt(res)
        if announce:
            self._emit(
                AttemptFailed(self.run_id, st.spec.task_id, st.attempt, category.value, message, "")
            )
        self._finalize(st, status, res, category=res.category)

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
        final = st.finish(status, res, flaky=flaky, category=category, message=message)
        self.store.finish_task(self.run_id, final)
        self._finished += 1
        bad = sum(1 for _, o in st.tests.values() if o in BAD_TESTS)
        self._limit.note_final(st.spec.task_id, status, bad)
        self._emit(
            TaskFinished(
                self.run_id, st.spec.task_id, status, final.category, final.message,
                st.wall_s, res.worker, flaky, self._finished, len(self.states),
                self._eta.finished(st, self._workers.threads),
            )
        )  # fmt: skip

    def _stop_at_failure_limit(self) -> None:
        """``--maxfail`` reached: nothing new starts, running pytest chunks stop
        after their current test (their results, failures included, are
        recorded), other running work is cancelled, the rest ends cancelled."""
        if self._stopping or not self._limit.reached():
            return
        self._stopping = True
        stopping.stop_early(
            self.client, self._inflight, self.states, self._end, self._ask_yield,
            self._limit.streamed(),
        )  # fmt: skip
