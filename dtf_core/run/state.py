"""The state of a run in flight, rebuilding it from the database, and the
attempts the coordinator records itself (no worker result to go by).

Kept apart from the run loop (:mod:`dtf_core.run.coordinator`) so that what a run
*is* can be read, tested and resumed without the machinery that drives it.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distributed import Future

from dtf_core.errors import Category, classify_exception
from dtf_core.model import (
    FINAL_TASK_STATES,
    AttemptResult,
    TaskFinal,
    TaskKind,
    TaskPayload,
    TaskSpec,
)
from dtf_core.store import AttemptRecord, Store

BAD_TESTS = frozenset({"failed", "error"})
GENUINE = frozenset({Category.TEST_FAILURE.value, Category.TIMEOUT.value})


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class TaskState:
    """What the coordinator knows about one task of the run in flight."""

    spec: TaskSpec
    attempt: int = 0  # attempts submitted so far
    transient_used: int = 0
    reruns_used: int = 0
    failed_before: bool = False  # a genuine failure happened in an earlier attempt
    waiting_since: float | None = None  # no capable worker yet
    final: TaskFinal | None = None
    wall_s: float = 0.0
    inflight: bool = False
    retry_nodeids: list[str] | None = None  # pytest reruns: only what failed
    tests: dict[str, tuple[int, str]] = field(default_factory=dict)  # nodeid -> (attempt, outcome)
    # pytest chunks given files: what the first attempt that got that far collected.
    collected: list[dict[str, Any]] | None = None

    def record(self, res: AttemptResult) -> None:
        """Fold what the current attempt reported into what the task has done."""
        self.inflight = False
        self.wall_s += res.wall_s
        if res.collected is not None and self.collected is None:
            self.collected = res.collected
        for t in res.tests:
            # Later attempts (reruns, continuations) overlay earlier ones per test;
            # within one attempt a test may report twice (failed + teardown error).
            if t.outcome in BAD_TESTS or self.tests.get(t.nodeid, (0, ""))[0] != res.attempt:
                self.tests[t.nodeid] = (res.attempt, t.outcome)

    def finish(
        self,
        status: str,
        res: AttemptResult,
        *,
        flaky: bool = False,
        category: str | None = None,
        message: str | None = None,
    ) -> TaskFinal:
        """End the task with ``status`` after its attempt ``res``; its final record
        (no category for a pass; ``message`` None keeps the attempt's own)."""
        self.final = TaskFinal(
            task_id=self.spec.task_id,
            status=status,
            category=category if status not in ("passed", "skipped") else None,
            message=res.message if message is None else message,
            attempts=self.attempt,
            flaky=flaky,
            wall_s=self.wall_s,
            worker=res.worker,
        )
        return self.final


# How the run loop's parts submit: these task states as one Dask task,
# optionally only these pytest node ids.
Submit = Callable[[list[TaskState], list[str] | None], None]


def rerun_nodeids(st: TaskState) -> list[str] | None:
    """Rerun only a pytest task's failing tests; None reruns it whole."""
    if st.spec.kind is not TaskKind.PYTEST:
        return None
    bad = sorted(n for n, (_, o) in st.tests.items() if o in BAD_TESTS)
    return bad or None


def decided_attempt(
    run_id: str, task_id: str, attempt: int, outcome: str, category: Category, message: str
) -> AttemptResult:
    """An attempt the coordinator decided itself (no worker result to record)."""
    now = time.time()
    return AttemptResult(
        run_id=run_id,
        task_id=task_id,
        attempt=attempt,
        outcome=outcome,
        category=category.value,
        message=message,
        started_at=now,
        finished_at=now,
    )


@dataclass
class RunResult:
    run_id: str
    status: str  # passed | failed | cancelled
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    # task id -> what its pytest process collected, for chunks that were given
    # files (see AttemptResult.collected); a task missing here collected nothing.
    collected: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def load_states(store: Store, run_id: str, transient: frozenset[str]) -> dict[str, TaskState]:
    """Rebuild a run's task states from the database (``dtf-core run --resume``)."""
    attempts: dict[str, list[AttemptRecord]] = defaultdict(list)
    for a in store.attempts(run_id):
        attempts[a["task_id"]].append(a)
    tests: dict[str, dict[str, tuple[int, str]]] = defaultdict(dict)
    for t in store.final_tests(run_id):
        tests[t["task_id"]][t["nodeid"]] = (int(t["attempt"]), str(t["outcome"]))
    fields = set(TaskSpec.__dataclass_fields__)
    states: dict[str, TaskState] = {}
    for row in store.tasks(run_id):
        stored = store.task_spec(run_id, row["task_id"]) or {}
        spec = TaskSpec(
            **{
                **{k: v for k, v in stored.items() if k in fields},
                "kind": TaskKind(stored["kind"]),
            }
        )
        st = TaskState(spec)
        past = attempts[spec.task_id]
        st.attempt = max((int(a["attempt"]) for a in past), default=0)
        st.transient_used = sum(1 for a in past if a["category"] in transient)
        st.reruns_used = sum(1 for a in past if a["category"] in GENUINE)
        st.failed_before = st.reruns_used > 0
        st.wall_s = sum(float(a["wall_s"] or 0.0) for a in past)
        st.tests = tests.get(spec.task_id, {})
        if row["status"] in FINAL_TASK_STATES:
            st.final = TaskFinal(
                task_id=spec.task_id, status=row["status"], category=row["category"],
                message=row["message"] or "", attempts=int(row["attempts"] or st.attempt),
                flaky=bool(row["flaky"]), wall_s=float(row["wall_s"] or 0.0),
                worker=row["worker"] or "",
            )  # fmt: skip
        states[spec.task_id] = st
    return states


def exception_of(fut: Future) -> BaseException | None:
    """Why a future did not finish (for a cancelled one, the cancel reason)."""
    if fut.status == "cancelled":
        # Future.exception() answers None for a cancelled future; the reason
        # (e.g. scheduler-connection-lost) is only on its state.
        reason = getattr(getattr(fut, "_state", None), "exception", None)
        return reason if isinstance(reason, BaseException) else None
    try:
        return fut.exception(timeout=1)
    except Exception as raised:
        return raised


def failed_results(payloads: list[TaskPayload], exc: BaseException | None) -> list[AttemptResult]:
    """The attempts of a Dask task that ended without results, classified."""
    if exc is None:
        category, message = Category.INFRASTRUCTURE, "the task was cancelled by Dask"
    else:
        category, message = classify_exception(exc)
    outcome = "unschedulable" if category is Category.UNSCHEDULABLE else "error"
    return [
        decided_attempt(p.run_id, p.spec.task_id, p.attempt, outcome, category, message)
        for p in payloads
    ]
