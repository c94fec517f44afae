"""A Store's reads run on cursors of their own (dtf_core/store/connection.py
ReadView): they do not wait for the writer's lock, see only what was committed,
and end with the Store. A real DuckDB file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dtf_core.errors import StoreError
from dtf_core.store import Store


def test_reads_go_on_while_a_write_transaction_holds_the_lock(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.duckdb")
    store.create_run("r0", "s", "s.toml", {}, time.time())
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store._db.transaction() as con:  # what a flush holds
            con.execute(
                "INSERT INTO runs (run_id, suite, suite_path, status, started_at, metadata)"
                " VALUES ('r1', 's', 's.toml', 'running', 1.0, '{}')"
            )
            inside.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert inside.wait(10)
        started = time.monotonic()
        seen = [r["run_id"] for r in store.list_runs()]  # from another thread than the writer
        assert time.monotonic() - started < 5  # did not wait for the transaction
        assert seen == ["r0"]  # what is not committed is not seen
    finally:
        release.set()
        t.join(10)
    assert sorted(r["run_id"] for r in store.list_runs()) == ["r0", "r1"]
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_runs()


def test_each_thread_reads_on_its_own_cursor(tmp_path: Path) -> None:
    with Store(tmp_path / "d.duckdb") as store:
        store.create_run("r0", "s", "s.toml", {}, time.time())
        errors: list[BaseException] = []

        def read() -> None:
            try:
                for _ in range(20):
                    assert store.get_run("r0")["suite"] == "s"
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        # The root cursor, then one per thread.
        assert len(store._rdb._cursors) == 1 + 6  # type: ignore[attr-defined]
