"""A speculative race settled: exactly one result goes on, the other attempt is
stored as cancelled (or, if it broke, as it is). Real Store and parts; no Dask:
the in-flight futures are never touched, only their keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dtf_core.model import AttemptResult, TaskKind, TaskPayload, TaskSpec
from dtf_core.run.monitor import HealthMonitor, Started
from dtf_core.run.pace import Pace
from dtf_core.run.speculation import Pair, Speculator, Twin
from dtf_core.run.state import TaskState
from dtf_core.run.workers import WorkerView
from dtf_core.store import Store

SPEC = TaskSpec("t[i=1]", "t", TaskKind.COMMAND, "/s", 60.0, 0, command=["true"])


@pytest.fixture
def race(db_path: Path):  # type: ignore[no-untyped-def]
    with Store(db_path) as store:
        store.create_run("r", "s", "/s/s.toml", {}, 0.0)
        st = TaskState(SPEC, attempt=2, inflight=True)  # the copy is attempt 2
        states = {SPEC.task_id: st}
        view = WorkerView(store, "r")
        pace = Pace()
        pinned: set[str] = set()
        cancelled: list[str] = []
        inflight: dict[str, tuple[Any, list[TaskPayload]]] = {
            "k1": (None, [TaskPayload("r", SPEC, 1, "k1")]),
            "k2": (None, [TaskPayload("r", SPEC, 2, "k2")]),
        }
        monitor = HealthMonitor(
            "r", states, store, view, pace, emit=lambda e: None, publish=lambda n, v: None,
            move=lambda k, w: None, pinned=pinned,
        )  # fmt: skip

        def cancel(key: str) -> None:
            cancelled.append(key)
            inflight.pop(key, None)

        spec = Speculator(
            "r", states, store, pace, view, monitor, copy=lambda *a, **k: None,
            move=lambda k, w: None, key_of=lambda t, a: None, cancel=cancel,
            emit=lambda e: None, pinned=pinned, enabled=True,
        )  # fmt: skip
        spec.pairs[SPEC.task_id] = Pair(Twin("k1", 1, "slow"), Twin("k2", 2, "fast"))
        started = {"k1": Started("slow", "tcp://s", 0.0), "k2": Started("fast", "tcp://f", 0.0)}
        yield spec, store, inflight, started, cancelled


def result(attempt: int, outcome: str = "passed", **kw: Any) -> AttemptResult:
    return AttemptResult("r", SPEC.task_id, attempt, outcome, **kw)


def test_the_original_finishing_first_wins_and_the_copy_is_stored_cancelled(race) -> None:  # type: ignore[no-untyped-def]
    spec, store, inflight, started, cancelled = race
    inflight.pop("k1")  # the run loop pops a finished key before it asks
    won = result(1, worker="slow", wall_s=9.0)
    assert spec.arbitrate("k1", [won], started, inflight) == [won]
    assert cancelled == ["k2"]
    assert spec.accepts(won) and not spec.accepts(won)  # it counts, once
    store.flush()
    (loser,) = store.attempts("r")
    assert (loser["attempt"], loser["outcome"], loser["worker"]) == (2, "cancelled", "fast")
    assert "attempt 1 on slow finished first" in loser["message"]


def test_the_copy_finishing_first_wins(race) -> None:  # type: ignore[no-untyped-def]
    spec, store, inflight, started, cancelled = race
    inflight.pop("k2")
    won = result(2, worker="fast", wall_s=1.0)
    assert spec.arbitrate("k2", [won], started, inflight) == [won]
    assert cancelled == ["k1"] and not spec.accepts(won)  # the latest attempt needs no pass
    store.flush()
    (loser,) = store.attempts("r")
    assert (loser["attempt"], loser["worker"], loser["outcome"]) == (1, "slow", "cancelled")
    assert loser["wall_s"] > 0  # how long the straggler had run


def test_a_twin_that_breaks_leaves_the_other_to_go_on(race) -> None:  # type: ignore[no-untyped-def]
    spec, store, inflight, started, cancelled = race
    inflight.pop("k2")
    broke = result(2, "error", category="worker-lost", worker="fast", message="worker died")
    assert spec.arbitrate("k2", [broke], started, inflight) == []
    assert cancelled == []
    store.flush()
    assert [(a["attempt"], a["category"]) for a in store.attempts("r")] == [(2, "worker-lost")]
    inflight.pop("k1")
    later = result(1, worker="slow")
    assert spec.arbitrate("k1", [later], started, inflight) == [later]  # no race any more
    assert spec.accepts(later)
