"""The DuckDB store against another process holding its lock, and at a million samples."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from support.storerows import attempt, count, open_run, spec

from dtf_core import errors
from dtf_core.store import Store, StoreReader


@pytest.fixture
def store(tmp_path):
    yield from open_run(tmp_path)


def test_second_process_holding_the_lock(tmp_path, spawn):
    path = tmp_path / "dtf.duckdb"
    Store(path).close()
    holder = spawn(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
            " time.sleep(120)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    for read_only in (False, True):
        with pytest.raises(errors.DatabaseLockedError) as info:
            (StoreReader(path, wait_s=0.3) if read_only else Store(path, lock_timeout=0.3))
        msg = str(info.value)
        assert f"process {holder.pid}" in msg
        assert "coordinator" in msg and "\n" not in msg
        assert isinstance(info.value.__cause__, Exception)


@pytest.mark.slow
def test_flush_one_million_samples(store):
    n_attempts, per = 5_000, 200
    store.add_tasks("r1", [spec(f"b[i={i}]", name="b", params={"i": i}) for i in range(n_attempts)])
    values = [float(v) for v in range(per)]
    for i in range(n_attempts):
        store.add_attempt(attempt(f"b[i={i}]", samples=values, hardware="hw"))
    t0 = time.perf_counter()
    assert store.flush() == n_attempts
    took = time.perf_counter() - t0
    print(f"\nflushed {n_attempts * per:,} samples in {took:.2f} s")
    assert count(store, "samples") == n_attempts * per
    big = [float(v) for v in range(1_000_000)]
    store.add_attempt(attempt("one", samples=big, hardware="hw"))
    t0 = time.perf_counter()
    assert store.flush() == 1
    print(f"flushed 1,000,000 samples of one attempt in {time.perf_counter() - t0:.2f} s")
    assert count(store, "samples") == n_attempts * per + 1_000_000
    row = store._one("SELECT max(idx), sum(value) FROM samples WHERE task_id = 'one'")
    assert row == (999_999, sum(big))
