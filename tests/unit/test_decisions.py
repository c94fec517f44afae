"""The run loop's rules, table-style and without Dask: what a finished attempt
leads to (dtf_core.run.decisions), how an attempt folds into a task's state,
the run's status, and the one backoff formula."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from dtf_core import model
from dtf_core.backoff import backoff
from dtf_core.errors import Category
from dtf_core.model import AttemptResult, TaskFinal, TaskKind, TaskSpec
from dtf_core.run.decisions import (
    STOPPED,
    Continue,
    Decision,
    Final,
    Retry,
    Split,
    charge,
    decide,
    rejected,
    run_status,
    waited_too_long,
)
from dtf_core.run.maxfail import FailureLimit
from dtf_core.run.retry import RetryPolicy
from dtf_core.run.state import TaskState

# No jitter: delay(attempt) is exactly 2 ** (attempt - 1) seconds, capped at 30.
POLICY = RetryPolicy(backoff_base=1.0, backoff_max=30.0, jitter=0.0)


@dataclass
class Row:
    """One finished attempt of a task and what the rules must answer."""

    id: str
    outcome: str
    category: str | None
    expected: Decision
    kind: TaskKind = TaskKind.COMMAND
    retries: int = 0
    rerun_failures: int = 0
    attempt: int = 1
    transient_used: int = 0
    reruns_used: int = 0
    failed_before: bool = False
    before: dict[str, tuple[int, str]] = field(default_factory=dict)  # tests of earlier attempts
    tests: list[tuple[str, str]] = field(default_factory=list)  # (nodeid, outcome) now
    remaining: list[str] = field(default_factory=list)
    yielded: bool = False
    message: str = "m"


def _spec(kind: TaskKind, retries: int = 0, rerun_failures: int = 0) -> TaskSpec:
    extra: dict[str, Any] = (
        {"path": "/s/tests"} if kind is TaskKind.PYTEST else {"command": ["true"]}
    )
    return TaskSpec(
        task_id="t", name="t", kind=kind, root="/s", timeout=10.0,
        retries=retries, rerun_failures=rerun_failures, **extra,
    )  # fmt: skip


def _attempt(
    attempt: int, outcome: str, category: str | None = None, message: str = "m", **kw: Any
) -> AttemptResult:
    return AttemptResult(
        run_id="r", task_id="t", attempt=attempt, outcome=outcome, category=category,
        message=message, worker="w1", wall_s=1.0, **kw,
    )  # fmt: skip


def _prepare(row: Row) -> tuple[TaskState, AttemptResult]:
    """The task's state with ``row``'s attempt folded in, as the run loop has it
    when it asks."""
    st = TaskState(_spec(row.kind, row.retries, row.rerun_failures))
    st.attempt, st.inflight = row.attempt, True
    st.transient_used, st.reruns_used = row.transient_used, row.reruns_used
    st.failed_before, st.tests = row.failed_before, dict(row.before)
    res = _attempt(
        row.attempt, row.outcome, row.category, row.message,
        tests=[model.TestResult(n, o) for n, o in row.tests], remaining=list(row.remaining),
        yielded=row.yielded,
    )  # fmt: skip
    st.record(res)
    return st, res


P = TaskKind.PYTEST
FAILED = "test-failure"
TIMEOUT = "timeout"

ROWS = [
    # ---- passing
    Row("passed", "passed", None, Final("passed", None, "m")),
    Row("skipped", "skipped", None, Final("skipped", None, "m")),
    Row("passed after a genuine failure is flaky", "passed", None,
        Final("passed", None, "m", flaky=True), attempt=2, failed_before=True),
    Row("skipped after a genuine failure is not flaky", "skipped", None,
        Final("skipped", None, "m"), attempt=2, failed_before=True),
    # ---- genuine failures draw on rerun_failures only
    Row("test failure, no reruns: final", "failed", FAILED,
        Final("failed", FAILED, "m", failed_attempt=True), retries=5),
    Row("test failure, a rerun left", "failed", FAILED,
        Retry(FAILED, "m", 1.0, genuine=True, nodeids=None), rerun_failures=1),
    Row("test failure, reruns spent", "failed", FAILED,
        Final("failed", FAILED, "m", failed_attempt=True), rerun_failures=1, reruns_used=1,
        attempt=2, retries=3),
    Row("test failure, rerun delay grows with the attempt", "failed", FAILED,
        Retry(FAILED, "m", 4.0, genuine=True, nodeids=None), rerun_failures=3, reruns_used=2,
        attempt=3),
    Row("timeout, a rerun left", "timed_out", TIMEOUT,
        Retry(TIMEOUT, "m", 1.0, genuine=True, nodeids=None), rerun_failures=1),
    Row("timeout, no rerun: timed_out", "timed_out", TIMEOUT,
        Final("timed_out", TIMEOUT, "m", failed_attempt=True), retries=2),
    Row("timeout category on an error outcome ends failed", "error", TIMEOUT,
        Final("failed", TIMEOUT, "m", failed_attempt=True)),
    # ---- transient categories draw on retries only
    Row("worker lost, retries left", "error", "worker-lost",
        Retry("worker-lost", "m", 1.0, genuine=False, nodeids=None), retries=2),
    Row("worker lost, second retry waits longer", "error", "worker-lost",
        Retry("worker-lost", "m", 2.0, genuine=False, nodeids=None), retries=2,
        transient_used=1, attempt=2),
    Row("worker lost, retries spent", "error", "worker-lost",
        Final("failed", "worker-lost", "m", failed_attempt=True), retries=2, transient_used=2,
        attempt=3, rerun_failures=5),
    Row("infrastructure, retries left", "error", "infrastructure",
        Retry("infrastructure", "m", 1.0, genuine=False, nodeids=None), retries=1),
    Row("resource, retries left", "error", "resource",
        Retry("resource", "m", 1.0, genuine=False, nodeids=None), retries=1),
    Row("resource, no retries", "error", "resource",
        Final("failed", "resource", "m", failed_attempt=True), rerun_failures=3),
    Row("security, retries left", "error", "security",
        Retry("security", "m", 1.0, genuine=False, nodeids=None), retries=1),
    Row("no category means infrastructure: retried", "error", None,
        Retry("infrastructure", "m", 1.0, genuine=False, nodeids=None), retries=1),
    Row("no category means infrastructure: final", "error", None,
        Final("failed", "infrastructure", "m", failed_attempt=True)),
    Row("delay is capped", "error", "worker-lost",
        Retry("worker-lost", "m", 30.0, genuine=False, nodeids=None), retries=20,
        transient_used=9, attempt=10),
    # ---- never retried
    Row("unschedulable outcome, whatever the budgets", "unschedulable", "unschedulable",
        Final("unschedulable", "unschedulable", "m"), retries=3, rerun_failures=3),
    Row("unschedulable category on an error outcome", "error", "unschedulable",
        Final("unschedulable", "unschedulable", "m"), retries=3),
    Row("unschedulable outcome with no category", "unschedulable", None,
        Final("unschedulable", "infrastructure", "m"), retries=3),
    Row("unschedulable keeps the attempt's own message over the tests'", "failed",
        "unschedulable", Final("unschedulable", "unschedulable", "m"),
        kind=P, rerun_failures=3, tests=[("t.py::a", "failed")]),
    Row("bad spec", "error", "bad-spec",
        Final("failed", "bad-spec", "m", failed_attempt=True), retries=3, rerun_failures=3),
    Row("cancelled outcome", "cancelled", "cancelled",
        Final("cancelled", "cancelled", "m", failed_attempt=True), retries=3),
    Row("cancelled category on an error outcome", "error", "cancelled",
        Final("cancelled", "cancelled", "m", failed_attempt=True), retries=3),
    # ---- pytest: the tests decide, a rerun runs only what failed
    Row("pytest rerun: only the failed and errored node ids, sorted", "failed", FAILED,
        Retry(FAILED, "2 test(s) failed, first: t.py::a", 1.0, genuine=True,
              nodeids=["t.py::a", "t.py::c"]),
        kind=P, rerun_failures=1,
        tests=[("t.py::c", "error"), ("t.py::b", "passed"), ("t.py::a", "failed")]),
    Row("pytest without reruns: final, message names the first failure", "failed", FAILED,
        Final("failed", FAILED, "1 test(s) failed, first: t.py::a", failed_attempt=True),
        kind=P, retries=2, tests=[("t.py::a", "failed"), ("t.py::b", "passed")]),
    Row("pytest: a failure of an earlier attempt still counts", "passed", None,
        Final("failed", FAILED, "1 test(s) failed, first: t.py::a", failed_attempt=True),
        kind=P, attempt=2, before={"t.py::a": (1, "failed")}, tests=[("t.py::b", "passed")]),
    Row("pytest: every failure rerun and passed: flaky pass", "passed", None,
        Final("passed", None, "m", flaky=True),
        kind=P, attempt=2, failed_before=True, reruns_used=1, rerun_failures=1,
        before={"t.py::a": (1, "failed"), "t.py::b": (1, "passed")},
        tests=[("t.py::a", "passed")]),
    Row("pytest: failed outcome but no test failing any more: passed", "failed", FAILED,
        Final("passed", None, "m", flaky=True),
        kind=P, attempt=2, failed_before=True, before={"t.py::a": (1, "failed")},
        tests=[("t.py::a", "passed")]),
    Row("pytest: tests passed, process failed for another reason", "failed", "resource",
        Final("failed", "resource", "m", failed_attempt=True),
        kind=P, tests=[("t.py::a", "passed")]),
    Row("pytest: failing tests keep the attempt's category", "failed", TIMEOUT,
        Final("failed", TIMEOUT, "1 test(s) failed, first: t.py::a", failed_attempt=True),
        kind=P, tests=[("t.py::a", "error")]),
    Row("pytest: a timed-out chunk keeps its own outcome and message", "timed_out", TIMEOUT,
        Final("timed_out", TIMEOUT, "m", failed_attempt=True),
        kind=P, tests=[("t.py::a", "failed")]),
    Row("pytest: failing tests on a passed outcome become a test failure", "passed", None,
        Retry(FAILED, "1 test(s) failed, first: t.py::a", 1.0, genuine=True,
              nodeids=["t.py::a"]),
        kind=P, rerun_failures=1, tests=[("t.py::a", "failed")]),
    Row("pytest: transient retries rerun the whole chunk", "error", "worker-lost",
        Retry("worker-lost", "m", 1.0, genuine=False, nodeids=None),
        kind=P, retries=1, tests=[("t.py::a", "failed")]),
    Row("pytest: no tests reported, test failure", "failed", FAILED,
        Retry(FAILED, "m", 1.0, genuine=True, nodeids=None), kind=P, rerun_failures=1),
    # ---- pytest chunks that stopped early
    Row("pytest died mid-chunk: the rest runs now, not a retry", "error", "worker-lost",
        Continue(["t.py::c", "t.py::d"]),
        kind=P, tests=[("t.py::a", "passed"), ("t.py::b", "error")],
        remaining=["t.py::c", "t.py::d"]),
    Row("pytest yielded to an idle thread: split", "passed", None, Split(),
        kind=P, tests=[("t.py::a", "passed")], remaining=["t.py::b", "t.py::c"], yielded=True),
    Row("yielded with nothing left: an ordinary pass", "passed", None,
        Final("passed", None, "m"), kind=P, tests=[("t.py::a", "passed")], yielded=True),
    Row("remaining means nothing for a command", "error", "worker-lost",
        Retry("worker-lost", "m", 1.0, genuine=False, nodeids=None), retries=1,
        remaining=["x"]),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_decide(row: Row) -> None:
    st, res = _prepare(row)
    assert decide(st, res, POLICY) == row.expected


def test_rows_cover_every_decision_and_category() -> None:
    kinds = {type(r.expected) for r in ROWS}
    assert kinds == {Split, Continue, Retry, Final}
    seen = {r.category for r in ROWS} | {
        r.expected.category for r in ROWS if isinstance(r.expected, Final | Retry)
    }
    assert {c.value for c in Category} <= seen


def test_decide_changes_nothing() -> None:
    row = Row("x", "failed", FAILED, Final("failed", FAILED, "m"), kind=P, rerun_failures=1,
              tests=[("t.py::a", "failed")])  # fmt: skip
    st, res = _prepare(row)
    before = (st.attempt, st.transient_used, st.reruns_used, st.failed_before, dict(st.tests))
    assert isinstance(decide(st, res, POLICY), Retry)
    assert (st.attempt, st.transient_used, st.reruns_used, st.failed_before, st.tests) == before
    assert st.retry_nodeids is None and st.final is None


def test_jitter_comes_from_the_given_rng() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=30.0, jitter=0.5)
    row = Row("x", "error", "worker-lost", Final("failed", None, ""), retries=1, attempt=3)
    st, res = _prepare(row)
    a = decide(st, res, policy, random.Random(1))
    b = decide(st, res, policy, random.Random(1))
    assert isinstance(a, Retry) and a == b
    assert 2.0 <= a.delay <= 6.0 and a.delay != 4.0


@pytest.mark.parametrize(
    ("genuine", "nodeids", "expected"),
    [
        (True, ["t.py::a"], (0, 1, True, ["t.py::a"])),
        (True, None, (0, 1, True, None)),
        (False, None, (1, 0, False, None)),
    ],
)
def test_charge_draws_on_the_right_budget(genuine, nodeids, expected) -> None:
    st = TaskState(_spec(P, retries=2, rerun_failures=2))
    st.retry_nodeids = ["stale"]
    charge(st, Retry("c", "m", 1.0, genuine, nodeids))
    assert (st.transient_used, st.reruns_used, st.failed_before, st.retry_nodeids) == expected


def test_flaky_over_a_whole_task_life() -> None:
    """fail -> rerun only the failure -> it passes: a flaky pass, two attempts."""
    st = TaskState(_spec(P, rerun_failures=2))
    st.attempt = 1
    first = _attempt(
        1,
        "failed",
        FAILED,
        tests=[model.TestResult("a", "failed"), model.TestResult("b", "passed")],
    )
    st.record(first)
    d1 = decide(st, first, POLICY)
    assert d1 == Retry(FAILED, "1 test(s) failed, first: a", 1.0, True, ["a"])
    assert isinstance(d1, Retry)
    charge(st, d1)
    st.attempt = 2
    second = _attempt(2, "passed", tests=[model.TestResult("a", "passed")])
    st.record(second)
    assert decide(st, second, POLICY) == Final("passed", None, "m", flaky=True)
    assert st.tests == {"a": (2, "passed"), "b": (1, "passed")}
    assert st.wall_s == 2.0


@pytest.mark.parametrize(
    ("before", "reports", "expected"),
    [
        ({}, [("a", "passed")], {"a": (1, "passed")}),
        # within one attempt a bad report wins (failed, then a teardown error)
        ({}, [("a", "failed"), ("a", "error")], {"a": (1, "error")}),
        ({}, [("a", "failed"), ("a", "passed")], {"a": (1, "failed")}),
        ({}, [("a", "passed"), ("a", "error")], {"a": (1, "error")}),
        # a later attempt overlays an earlier one, good or bad
        ({"a": (0, "failed")}, [("a", "passed")], {"a": (1, "passed")}),
        ({"a": (0, "passed")}, [("a", "failed")], {"a": (1, "failed")}),
        ({"b": (0, "failed")}, [("a", "passed")], {"a": (1, "passed"), "b": (0, "failed")}),
    ],
)
def test_record_overlays_tests(before, reports, expected) -> None:
    st = TaskState(_spec(P))
    st.tests, st.inflight = dict(before), True
    st.record(_attempt(1, "failed", tests=[model.TestResult(n, o) for n, o in reports]))
    assert st.tests == expected and not st.inflight


def test_record_keeps_the_first_collection() -> None:
    st = TaskState(_spec(P))
    st.record(_attempt(1, "error", collected=[{"nodeid": "a"}]))
    st.record(_attempt(2, "error", collected=[{"nodeid": "b"}]))
    st.record(_attempt(3, "error"))
    assert st.collected == [{"nodeid": "a"}] and st.wall_s == 3.0


@pytest.mark.parametrize(("retries", "used", "kind"), [(1, 0, Retry), (1, 1, Final), (0, 0, Final)])
def test_security_rejection(retries, used, kind) -> None:
    """A rejected result is a transient security failure, on its retries budget."""
    res = rejected(_attempt(1, "passed", tests=[model.TestResult("a", "passed")]), "bad signature")
    assert (res.outcome, res.category, res.tests) == ("error", "security", [])
    assert "bad signature" in res.message and "'w1'" in res.message
    st = TaskState(_spec(TaskKind.COMMAND, retries=retries, rerun_failures=3))
    st.attempt, st.transient_used = 1, used
    st.record(res)
    d = decide(st, res, POLICY)
    assert isinstance(d, kind)
    if isinstance(d, Final):
        assert (d.status, d.category, d.failed_attempt) == ("failed", "security", True)


@pytest.mark.parametrize(
    ("final", "waiting_since", "now", "timeout", "expected"),
    [
        (None, None, 100.0, 0.0, False),  # not waiting
        (None, 100.0, 100.0, 0.0, True),  # embedded cluster: at once
        (None, 100.0, 129.9, 30.0, False),
        (None, 100.0, 130.0, 30.0, True),
        ("passed", 100.0, 200.0, 30.0, False),  # already final
    ],
)
def test_waited_too_long(final, waiting_since, now, timeout, expected) -> None:
    st = TaskState(_spec(TaskKind.COMMAND))
    st.waiting_since = waiting_since
    if final:
        st.final = _final(final)
    assert waited_too_long(st, now, timeout) is expected


def _final(status: str) -> TaskFinal:
    return TaskFinal("t", status, None, "", 1, False, 0.0, "")


@pytest.mark.parametrize(
    ("statuses", "cancelled", "expected"),
    [
        ([], False, "passed"),
        (["passed", "skipped"], False, "passed"),
        (["passed", "failed"], False, "failed"),
        (["passed", "timed_out"], False, "failed"),
        (["unschedulable"], False, "failed"),
        (["passed"], True, "cancelled"),
        (["cancelled", "passed"], False, "failed"),
    ],
)
def test_run_status(statuses, cancelled, expected) -> None:
    status, counts = run_status([_final(s) for s in statuses], cancelled)
    assert status == expected
    assert counts == {s: statuses.count(s) for s in statuses}


@pytest.mark.parametrize(
    ("failures", "base", "cap", "expected"),
    [
        (0, 0.2, 30.0, 0.2),
        (1, 0.2, 30.0, 0.4),
        (3, 0.2, 30.0, 1.6),
        (20, 0.2, 30.0, 30.0),
        (-1, 1.0, 30.0, 1.0),
        (10_000, 1.0, 30.0, 30.0),  # days of worker relaunches: no overflow
    ],
)
def test_backoff(failures, base, cap, expected) -> None:
    assert backoff(failures, base, cap) == pytest.approx(expected)


def test_backoff_jitter_is_symmetric_and_bounded() -> None:
    rng = random.Random(3)
    delays = [backoff(2, 1.0, 100.0, 0.5, rng) for _ in range(500)]
    assert min(delays) >= 2.0 and max(delays) <= 6.0
    assert min(delays) < 2.5 and max(delays) > 5.5
    assert backoff(2, 1.0, 100.0, 0.0, rng) == 4.0


# ---- -x / --maxfail over a whole run (run.maxfail, decide(stopping=True))


def test_no_limit_never_stops() -> None:
    limit = FailureLimit(None)
    limit.note_final("a", "failed", 50)
    assert not limit.reached()
    assert not FailureLimit(0).reached()


def test_streamed_then_stored_failures_count_once() -> None:
    limit = FailureLimit(3)
    limit.note_stream("c1", {"failed": 1, "passed": 4})
    limit.note_stream("c1", {"error": 1})
    assert limit.count() == 2 and not limit.reached()
    limit.note_final("c1", "failed", 2)  # the same two, now stored
    assert limit.count() == 2
    limit.note_final("cmd", "timed_out", 0)  # a failed task without tests counts 1
    assert limit.count() == 3 and limit.reached()


def test_passed_and_skipped_tasks_do_not_count() -> None:
    limit = FailureLimit(1)
    limit.note_final("a", "passed", 0)
    limit.note_final("b", "skipped", 0)
    limit.note_final("c", "cancelled", 0)
    assert limit.count() == 0


STOP_ROWS = [
    # (row, expected decision once stopping)
    (
        Row(
            "yielded chunk with a failure ends failed",
            "failed",
            "test-failure",
            Split(),
            kind=P,
            tests=[("t.py::a", "failed"), ("t.py::b", "passed")],
            remaining=["t.py::c"],
            yielded=True,
        ),
        Final("failed", "test-failure", "1 test(s) failed, first: t.py::a", failed_attempt=True),
    ),
    (
        Row(
            "yielded clean chunk ends cancelled",
            "passed",
            None,
            Split(),
            kind=P,
            tests=[("t.py::a", "passed")],
            remaining=["t.py::c"],
            yielded=True,
        ),
        Final("cancelled", "cancelled", STOPPED),
    ),
    (
        Row(
            "crashed chunk does not continue",
            "failed",
            "test-failure",
            Continue(["t.py::c"]),
            kind=P,
            tests=[("t.py::a", "failed")],
            remaining=["t.py::c"],
        ),
        Final("failed", "test-failure", "1 test(s) failed, first: t.py::a", failed_attempt=True),
    ),
    (
        Row(
            "a transient failure is not retried",
            "error",
            "worker-lost",
            Retry("worker-lost", "m", 1.0, genuine=False, nodeids=None),
            retries=2,
        ),
        Final("cancelled", "cancelled", STOPPED),
    ),
    (
        Row("a final decision stays", "passed", None, Final("passed", None, "m")),
        Final("passed", None, "m"),
    ),
]


@pytest.mark.parametrize(("row", "expected"), STOP_ROWS, ids=[r.id for r, _ in STOP_ROWS])
def test_stopping_turns_every_going_on_into_an_end(row: Row, expected: Final) -> None:
    st, res = _prepare(row)
    assert decide(st, res, POLICY) == row.expected  # the row as the normal table has it
    st, res = _prepare(row)
    assert decide(st, res, POLICY, stopping=True) == expected
