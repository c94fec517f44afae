"""The DuckDB store: migrations, idempotent flushes, reads (its lock held by another
process, and a million samples: integration/test_store_heavy.py)."""

from __future__ import annotations

import dask.config
import pytest
from support.storerows import attempt, count, open_run, spec

from dtf_core import errors, model
from dtf_core.store import MIGRATIONS, Store, StoreReader


@pytest.fixture
def store(tmp_path):
    yield from open_run(tmp_path)


def test_migrations_applied_once_and_reopen_keeps_data(tmp_path):
    path = tmp_path / "a" / "b" / "dtf.duckdb"
    with Store(path) as s:  # parent directories are created
        assert s.schema_version() == len(MIGRATIONS)
        s.create_run("r1", "demo", "/x", {}, 1.0)
    with Store(path) as s:
        assert count(s, "schema_version") == len(MIGRATIONS)
        assert s.get_run("r1")["suite"] == "demo"
    with StoreReader(path) as s:
        assert s.latest_run_id() == "r1"


def test_read_only_missing_file(tmp_path):
    path = tmp_path / "nope" / "dtf.duckdb"
    with pytest.raises(errors.StoreError, match="no database at"):
        StoreReader(path)
    assert not path.parent.exists()


def test_not_a_database(tmp_path):
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"not duckdb at all" * 100)
    with pytest.raises(errors.StoreError, match=str(path)):
        Store(path)


def test_add_tasks_keeps_spec_and_canonical_params(store):
    s1 = spec("b[z=1,a=2]", name="b", params={"z": 1, "a": 2}, requires={"GPU": 1.0})
    store.add_tasks("r1", [s1, spec("c", kind="command", command=["true"])])
    store.add_tasks("r1", [s1])  # again: ignored
    rows = {t["task_id"]: t for t in store.tasks("r1")}
    assert rows["b[z=1,a=2]"]["status"] == "pending"
    assert rows["b[z=1,a=2]"]["params"] == {"a": 2, "z": 1}
    assert rows["b[z=1,a=2]"]["requires"] == {"GPU": 1.0}
    raw = store._one("SELECT params::VARCHAR FROM tasks WHERE task_id = 'b[z=1,a=2]'")
    assert raw == ('{"a": 2, "z": 1}',)
    assert store.task_spec("r1", "c")["command"] == ["true"]
    assert store.unfinished_tasks("r1") == ["b[z=1,a=2]", "c"]


def test_flush_listeners_hear_of_flushes_that_wrote_something(store):
    heard: list[tuple[str, int]] = []
    store.flush_listeners.append(lambda s, n: heard.append(("metrics", n)))
    store.flush_listeners.append(lambda s, n: heard.append(("console", n)))
    store.flush()
    assert heard == []  # nothing buffered: nothing to tell
    store.add_tasks("r1", [spec("a")])
    store.finish_task("r1", model.TaskFinal("a", "passed", attempts=1))
    store.flush()
    assert [who for who, _ in heard] == ["metrics", "console"]
    assert store.tasks("r1")[0]["status"] == "passed"  # written before they were told


def test_flush_is_idempotent_per_attempt(store):
    store.add_tasks("r1", [spec("b", params={"n": 1})])
    a1 = attempt("b", samples=[1.0, 2.0, 3.0], hardware="hw", unit="ms")
    store.add_attempt(a1)
    store.add_attempt(a1)  # duplicate in the same buffer
    assert store.flush() == 1
    store.add_attempt(a1)  # delivered again later
    store.add_attempt(attempt("b", 2, samples=[4.0], hardware="hw"))
    assert store.flush() == 1
    assert store.flush() == 0
    assert count(store, "attempts") == 2
    assert count(store, "samples") == 4
    df = store.benchmark_samples("r1")  # the last attempt with samples
    assert df["value"].tolist() == [4.0]
    assert df["benchmark"].tolist() == ["b"] and df["params"].tolist() == ['{"n": 1}']


def test_errors_rows_for_attempts_that_did_not_pass(store):
    store.add_attempt(attempt("t", 1, "error", category="worker-lost", message="gone", worker="w1"))
    store.add_attempt(attempt("t", 2, "failed", category="test-failure", finished_at=5.0))
    store.add_attempt(attempt("t", 3, "skipped"))
    store.flush()
    errs = store.errors("r1")
    assert [(e["attempt"], e["category"], e["severity"]) for e in errs] == [
        (2, "test-failure", "error"),  # ts 5.0; attempt 1 had no times: stamped now
        (1, "worker-lost", "critical"),
    ]
    assert errs[1]["message"] == "gone" and errs[1]["worker"] == "w1"
    assert store.attempts("r1", "t")[0]["exit_code"] is None


def test_final_tests_overlay_and_flaky(store):
    t = model.TestResult
    store.add_attempt(
        attempt(
            "p",
            1,
            "failed",
            category="test-failure",
            worker="w1",
            tests=[
                t("a.py::ok", "passed", 0.1),
                t("a.py::flip", "failed", 0.2, "boom"),
                t("a.py::bad", "failed", 0.3, "no"),
            ],
        )
    )
    store.add_attempt(
        attempt("p", 2, "failed", worker="w2",
                tests=[t("a.py::flip", "passed", 0.2), t("a.py::bad", "failed", 0.3, "still")])
    )  # fmt: skip
    store.finish_task(
        "r1", model.TaskFinal("p", "failed", "test-failure", "1 failed", 2, True, 2.0)
    )
    store.flush()
    final = {r["nodeid"]: r for r in store.final_tests("r1")}
    assert final["a.py::flip"]["outcome"] == "passed" and final["a.py::flip"]["flaky"]
    assert final["a.py::flip"]["attempt"] == 2 and final["a.py::flip"]["worker"] == "w2"
    assert final["a.py::bad"]["outcome"] == "failed" and not final["a.py::bad"]["flaky"]
    assert final["a.py::bad"]["message"] == "still"
    assert final["a.py::ok"]["attempt"] == 1 and not final["a.py::ok"]["flaky"]


def test_finish_task_and_run(store):
    store.add_tasks("r1", [spec("b"), spec("c")])
    store.finish_task("r1", model.TaskFinal("b", "passed", attempts=1, wall_s=1.0, worker="w"))
    store.finish_task("r1", model.TaskFinal("b", "passed", attempts=1, wall_s=3.0, worker="w"))
    store.finish_task("r1", model.TaskFinal("ghost", "cancelled"))  # add_tasks never saw it
    store.finish_run("r1", "failed", 2000.0)  # flushes first
    run = store.get_run("r1")
    assert (run["status"], run["finished_at"], run["metadata"]) == (
        "failed",
        2000.0,
        {"git": "abc"},
    )
    tasks = {t["task_id"]: t for t in store.tasks("r1")}
    assert tasks["b"]["wall_s"] == 3.0 and tasks["b"]["status"] == "passed"
    assert tasks["ghost"]["status"] == "cancelled"
    assert store.unfinished_tasks("r1") == ["c"]
    assert store.list_runs()[0]["failed"] == 2


def test_runs_listing_and_missing_run(store, tmp_path):
    store.create_run("r2", "demo", "/x", {}, 2000.0)
    assert store.latest_run_id() == "r2"
    assert [r["run_id"] for r in store.list_runs(limit=5)] == ["r2", "r1"]
    with pytest.raises(errors.RunNotFoundError, match=r"no run 'zz' in .*dtf-core runs --db"):
        store.get_run("zz")
    assert Store(tmp_path / "empty.duckdb").latest_run_id() is None


def test_workers_upsert(store):
    w = {"address": "tcp://1", "name": "w1", "host": "h1", "resources": {"GPU": 1}, "hardware": {}}
    store.record_workers("r1", [w])
    first = store.workers("r1")[0]["first_seen"]
    store.record_workers("r1", [{**w, "name": "w1b"}])
    rows = store.workers("r1")
    assert len(rows) == 1 and rows[0]["name"] == "w1b" and rows[0]["first_seen"] == first
    assert rows[0]["resources"] == {"GPU": 1}


def test_buffered_worker_rows_land_with_the_next_flush(store):
    # A worker's hardware comes with its first result: one transaction per worker
    # was most of a 500-worker run's time, so those rows wait for the flush.
    w = {"address": "tcp://2", "name": "w2", "host": "h", "resources": {}, "hardware": {"cpu": "x"}}
    store.record_workers("r1", [w], buffered=True)
    assert store.workers("r1") == []
    store.flush()
    rows = store.workers("r1")
    assert [r["name"] for r in rows] == ["w2"] and rows[0]["hardware"] == {"cpu": "x"}


def test_task_history_median(tmp_path):
    with Store(tmp_path / "h.duckdb") as s:
        for i, wall in enumerate([1.0, 2.0, 10.0]):
            s.create_run(f"r{i}", "demo", "/x", {}, float(i))
            s.add_tasks(f"r{i}", [spec(f"b[n={i}]", name="b"), spec("c")])
            s.finish_task(f"r{i}", model.TaskFinal(f"b[n={i}]", "passed", wall_s=wall))
            s.finish_task(f"r{i}", model.TaskFinal("c", "passed", wall_s=0.5))
            s.flush()
        assert s.task_history() == {"b": 2.0, "c": 0.5}
        assert s.task_history(["c"]) == {"c": 0.5}
        assert s.task_history([]) == {}


def test_should_flush(store):
    assert not store.should_flush()
    with dask.config.set({"dtf.store.flush-interval": "1h", "dtf.store.flush-rows": 3}):
        store.add_attempt(attempt("b", samples=[1.0]))
        assert not store.should_flush()
        store.add_attempt(attempt("b", 2, samples=[1.0, 2.0]))
        assert store.should_flush()
    with dask.config.set({"dtf.store.flush-interval": "0s"}):
        assert store.should_flush()
    store.flush()
    assert not store.should_flush()


def test_final_tests_keep_both_rows_of_a_node(store):
    # pytest counts a call failure plus a teardown error of one test as both.
    t = model.TestResult
    store.add_attempt(attempt("p", 1, "failed", tests=[t("a.py::x", "failed")]))
    store.add_attempt(
        attempt("p", 2, "failed", tests=[t("a.py::x", "passed"), t("a.py::x", "error")])
    )
    store.flush()
    rows = store.final_tests("r1")
    assert [(r["outcome"], r["flaky"]) for r in rows] == [("error", False), ("passed", False)]
