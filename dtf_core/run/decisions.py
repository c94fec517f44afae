"""What to do with a finished attempt: the retry rules, as pure functions.

The run loop (:mod:`dtf_core.run.coordinator`) owns every side effect: it
records the attempt, folds it into the task's state (:meth:`TaskState.record
<dtf_core.run.state.TaskState.record>`), asks :func:`decide` and applies the
answer. Nothing here talks to Dask, DuckDB or the listeners, so the rules are
tested table-style (``tests/unit/test_decisions.py``).

The rules, in the order they apply:

* A pytest chunk that **yielded** (an idle worker thread asked for work) with
  tests it never started: :class:`Split`.
* A pytest chunk whose process **died mid-chunk** (a crash, a per-test
  timeout) with tests it never started: :class:`Continue` with those, at once.
  Not a retry: nothing runs twice.
* A pytest task's outcome is what its tests say over all its attempts (a
  rerun overlays the tests it ran): any test still failing fails the task
  (``test-failure``); a failed task whose failures all passed on rerun passed.
* ``passed`` / ``skipped``: final; ``passed`` after a genuine failure is flaky.
* ``unschedulable``: final at once, whatever the budgets.
* Otherwise (no category means ``infrastructure``) :meth:`RetryPolicy.should_retry
  <dtf_core.run.retry.RetryPolicy.should_retry>` decides: transient categories
  draw on ``retries``, ``test-failure`` / ``timeout`` on ``rerun_failures``
  (a pytest rerun runs only the failed node ids); ``bad-spec`` and ``cancelled``
  never retry. What is not retried is final, announced as a failed attempt.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from dtf_core.errors import Category
from dtf_core.model import AttemptResult, TaskFinal, TaskKind
from dtf_core.run.retry import RetryPolicy
from dtf_core.run.state import BAD_TESTS, GENUINE, TaskState, rerun_nodeids

# Final statuses named by an attempt's outcome; any other failure is "failed".
_OUTCOME_TO_STATUS = {
    "passed": "passed",
    "skipped": "skipped",
    "timed_out": "timed_out",
    "unschedulable": "unschedulable",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Split:
    """The chunk yielded: share the tests it never started with a new task."""


@dataclass(frozen=True)
class Continue:
    """The chunk's process died mid-chunk: run the tests it never started, now."""

    nodeids: list[str]


@dataclass(frozen=True)
class Retry:
    """Run the task again after ``delay`` seconds (announced as a failed attempt)."""

    category: str
    message: str
    delay: float
    genuine: bool  # draws on rerun_failures (a real failure), else on retries
    nodeids: list[str] | None  # a pytest rerun: only these; None: the whole task


@dataclass(frozen=True)
class Final:
    """The task ends with ``status``."""

    status: str
    category: str | None
    message: str
    flaky: bool = False
    failed_attempt: bool = False  # announce the attempt as failed first (not retried)


Decision = Split | Continue | Retry | Final


def decide(
    st: TaskState,
    res: AttemptResult,
    policy: RetryPolicy,
    rng: random.Random | None = None,
    *,
    stopping: bool = False,
) -> Decision:
    """What to do after ``res``, the current attempt of ``st``, already folded
    into ``st`` (its tests overlaid). Reads ``st``; changes nothing.

    ``stopping``: the run reached its ``--maxfail``; nothing more runs, so a
    task that would go on ends with what it ran (failed if a test failed)."""
    decision = _decide(st, res, policy, rng)
    if not stopping or isinstance(decision, Final):
        return decision
    bad = sorted(n for n, (_, o) in st.tests.items() if o in BAD_TESTS)
    if bad:
        message = f"{len(bad)} test(s) failed, first: {bad[0]}"
        return Final("failed", Category.TEST_FAILURE.value, message, failed_attempt=True)
    return Final("cancelled", Category.CANCELLED.value, STOPPED)


STOPPED = "not finished: the run stopped at its failure limit (--maxfail / -x)"


def _decide(
    st: TaskState, res: AttemptResult, policy: RetryPolicy, rng: random.Random | None
) -> Decision:
    pytest = st.spec.kind is TaskKind.PYTEST
    if res.remaining and pytest:
        return Split() if res.yielded else Continue(list(res.remaining))
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
        return Final(outcome, None, message, flaky=flaky)
    category = category or Category.INFRASTRUCTURE.value
    if outcome == "unschedulable" or category == Category.UNSCHEDULABLE.value:
        return Final("unschedulable", category, res.message)
    if policy.should_retry(st.spec, category, st.transient_used, st.reruns_used):
        genuine = category in GENUINE
        nodeids = rerun_nodeids(st) if genuine else None
        return Retry(category, message, policy.delay(st.attempt, rng), genuine, nodeids)
    status = _OUTCOME_TO_STATUS.get(outcome, "failed")
    if category == Category.CANCELLED.value:
        status = "cancelled"
    return Final(status, category, message, failed_attempt=True)


def rejected(res: AttemptResult, reason: str) -> AttemptResult:
    """What a result whose signature did not hold becomes: a failed attempt of
    category ``security``, retried under the task's ``retries`` (elsewhere:
    its worker is distrusted)."""
    return AttemptResult(
        run_id=res.run_id, task_id=res.task_id, attempt=res.attempt, outcome="error",
        category=Category.SECURITY.value,
        message=f"result rejected: {reason}; no more work goes to worker {res.worker!r}",
        worker=res.worker, started_at=res.started_at, finished_at=time.time(),
    )  # fmt: skip


def charge(st: TaskState, retry: Retry) -> None:
    """Draw a retry from the task's budgets (the run loop calls this as it
    schedules the retry)."""
    if retry.genuine:
        st.reruns_used += 1
        st.failed_before = True
    else:
        st.transient_used += 1
    st.retry_nodeids = retry.nodeids


def waited_too_long(st: TaskState, now: float, timeout: float) -> bool:
    """A task no worker can run ends as unschedulable after ``timeout`` seconds."""
    return st.final is None and st.waiting_since is not None and now - st.waiting_since >= timeout


def run_status(finals: Iterable[TaskFinal], cancelled: bool) -> tuple[str, dict[str, int]]:
    """A run's status (cancelled / passed / failed) and its count per task status."""
    finals = list(finals)
    counts = dict(Counter(f.status for f in finals))
    if cancelled:
        return "cancelled", counts
    if all(f.status in ("passed", "skipped") for f in finals):
        return "passed", counts
    return "failed", counts
