"""serve's console builds reread the focused run's tasks and the listed runs
only when they may have changed (service/views/readcache.py), on a real DuckDB
file: what they return is always what a fresh read returns."""

from __future__ import annotations

from pathlib import Path

from dtf_core.model import TaskFinal, TaskKind, TaskSpec
from dtf_core.service.views import storeread
from dtf_core.service.views.readcache import (
    RUNS_TTL,
    TASKS_TTL,
    WORKERS_TTL,
    FocusedTasks,
    ListedRuns,
    RecordedWorkers,
)
from dtf_core.store import Store


def _spec(i: int) -> TaskSpec:
    return TaskSpec(task_id=f"t{i:03d}", name="t", kind=TaskKind.COMMAND, root="/s",
                    timeout=60.0, retries=0, command=["true"])  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_focused_runs_tasks_are_read_again_exactly_when_they_changed(tmp_path: Path) -> None:
    clock = Clock()
    tasks = FocusedTasks(clock)
    with Store(tmp_path / "d.duckdb") as store:
        store.create_run("r1", "s", "/s/suite.toml", {}, 1.0)
        store.add_tasks("r1", [_spec(i) for i in range(30)])
        store.flush()

        def row() -> dict:
            return next(r for r in store.list_runs() if r["run_id"] == "r1")

        def check() -> None:
            whole = [storeread.task_row("r1", t) for t in store.tasks("r1")]
            assert storeread.task_rows(store, "r1") == whole  # the lean read: the same rows
            assert tasks(store, row()) == whole

        check()
        check()
        assert (tasks.reads, tasks.partial_reads) == (1, 0)  # nothing changed: rows reused
        store.finish_task("r1", TaskFinal("t003", "passed", attempts=1, wall_s=0.5, worker="w"))
        check()
        assert (tasks.reads, tasks.partial_reads) == (1, 0)  # not flushed: the file is the same
        store.flush()
        check()
        assert (tasks.reads, tasks.partial_reads) == (1, 1)  # a task left pending: its row read
        # A task added during the run (a split chunk), and one added and final at once.
        store.add_tasks("r1", [_spec(30), _spec(31)])
        store.finish_task("r1", TaskFinal("t031", "passed", attempts=1, wall_s=0.1, worker="w"))
        store.finish_task("r1", TaskFinal("t004", "failed", attempts=1, wall_s=0.2, worker="w"))
        store.finish_task(
            "r1", TaskFinal("t005", "passed", "flaky", "passed on its 2nd try", 2, flaky=True)
        )
        store.flush()
        check()
        assert (tasks.reads, tasks.partial_reads) == (1, 2)
        clock.now += TASKS_TTL
        check()
        assert tasks.reads == 2  # and whole anyway after a while, while it runs
        for i in range(32):
            if i not in (3, 4, 5, 31):
                store.finish_task("r1", TaskFinal(f"t{i:03d}", "failed", attempts=2))
        store.flush()
        check()
        store.finish_run("r1", "failed", 9.0)
        check()
        clock.now += 10 * TASKS_TTL
        check()
        assert tasks.reads == 3  # the run's end read whole; a finished run's rows no longer change


def test_the_listed_runs_are_read_again_when_a_run_starts_or_ends(tmp_path: Path) -> None:
    clock = Clock()
    listed = ListedRuns(20, clock)
    with Store(tmp_path / "d.duckdb") as store:
        assert listed(store, set()) == []
        store.create_run("r1", "s", "/s/suite.toml", {}, 1.0)
        # the service knows of it before the cache: read again
        assert listed(store, {"r1"}) == store.list_runs(20)
        assert listed(store, {"r1"}) == store.list_runs(20) and listed.reads == 2
        store.finish_run("r1", "passed", 2.0)
        assert listed(store, set()) == store.list_runs(20) and listed.reads == 3
        store.create_run("r2", "s", "/s/suite.toml", {}, 3.0)
        store.create_run("r3", "s", "/s/suite.toml", {}, 4.0)
        assert listed(store, {"r2", "r3"}) == store.list_runs(20)
        assert listed(store, {"r2", "r3"}) == store.list_runs(20) and listed.reads == 5
        store.finish_run("r3", "passed", 5.0)
        assert listed(store, {"r2"})[0]["status"] == "passed" and listed.reads == 6
        listed(store, {"r2"})
        assert listed.reads == 6
        clock.now += RUNS_TTL
        listed(store, {"r2"})
        assert listed.reads == 7


def test_the_recorded_workers_are_read_again_for_another_run_its_end_and_after_a_second(
    tmp_path: Path,
) -> None:
    clock = Clock()
    recorded = RecordedWorkers(clock)
    w = {"address": "tcp://h:1", "name": "w1", "host": "h", "resources": {"GPU": 1.0}}
    with Store(tmp_path / "d.duckdb") as store:
        store.create_run("r1", "s", "/s/suite.toml", {}, 1.0)
        store.create_run("r2", "s", "/s/suite.toml", {}, 2.0)

        def row(run_id: str) -> dict:
            return next(r for r in store.list_runs() if r["run_id"] == run_id)

        assert recorded(store, row("r1")) == []
        store.record_workers("r1", [w])
        assert recorded(store, row("r1")) == []  # within the second: the same read
        clock.now += WORKERS_TTL
        assert recorded(store, row("r1")) == storeread.workers(store, "r1") != []
        store.add_health([{"run_id": "r1", "worker": "w1", "address": w["address"], "ts": 5.0,
                           "state": "degraded", "reason": "slow", "changed": True}])  # fmt: skip
        assert recorded(store, row("r1"))[0].health == ""
        assert recorded(store, row("r2")) == [] and recorded.reads == 3  # another run: read
        assert recorded(store, row("r1"))[0].health == "degraded"  # and back: read again
        store.add_health([{"run_id": "r1", "worker": "w1", "address": w["address"], "ts": 6.0,
                           "state": "healthy", "reason": "", "changed": True}])  # fmt: skip
        store.finish_run("r1", "passed", 7.0)
        assert recorded(store, row("r1"))[0].health == "healthy"  # its end: read again
        assert recorded(store, row("r1")) == storeread.workers(store, "r1")
        assert recorded.reads == 5
