"""A small, fixed dtf database for the console's tests and snapshots.

Everything is at fixed times (``NOW`` is what the console's clock says), so
screenshots do not change from one day to the next. It holds:

* 30 nightly benchmark runs of ``sort[n=1000]`` on two hardware labels; on
  ``EPYC`` the median shifts from ~10 ms to ~15 ms at run #20 (``SHIFT_AT``),
  on ``Xeon`` it stays flat;
* the newest run (``LATEST``) with passed, failed (test-failure), timed-out,
  retried-then-passed (worker-lost, flaky) and unschedulable tasks on two
  recorded workers, one tagged GPU=1.
"""

from __future__ import annotations

import random
from pathlib import Path

from dtf_core.model import AttemptResult, TaskFinal, TaskKind, TaskSpec
from dtf_core.store import Store

BASE = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86_400.0
EPYC = "x86_64 · AMD EPYC 7B13 · 8 cores"
XEON = "x86_64 · Intel Xeon · 4 cores"
SHIFT_AT = 20
BENCH_RUNS = 30
LATEST = "20260131-020000-nightly"
LATEST_START = BASE + BENCH_RUNS * DAY + 7200
NOW = LATEST_START + 1800  # the console's clock in the tests


def _spec(task_id: str, kind: TaskKind = TaskKind.COMMAND, **kw: object) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        name=task_id.split("[")[0],
        kind=kind,
        root="/suite",
        timeout=60.0,
        retries=1,
        command=["true"] if kind is TaskKind.COMMAND else None,
        **kw,  # type: ignore[arg-type]
    )


def _bench_runs(store: Store) -> None:
    rng = random.Random(5)
    spec = _spec("sort[n=1000]", TaskKind.BENCHMARK, function="bench:sort", params={"n": 1000})
    for i in range(BENCH_RUNS):
        # One run per hardware per night: a benchmark task runs on one worker.
        for j, (hw, level) in enumerate([(EPYC, 0.015 if i >= SHIFT_AT else 0.010), (XEON, 0.020)]):
            run_id = f"2026{1 + i // 31:02d}{i % 31 + 1:02d}-01000{j}-bench"
            start = BASE + i * DAY + 3600 + j * 600
            store.create_run(run_id, "bench", "/suite/bench.toml", {"commit": f"c{i:03d}"}, start)
            store.add_tasks(run_id, [spec])
            samples = [level * (1 + rng.gauss(0, 0.01)) for _ in range(20)]
            store.add_attempt(
                AttemptResult(
                    run_id, spec.task_id, 1, "passed", worker=f"w{j}", hardware=hw,
                    started_at=start, finished_at=start + 1, wall_s=1.0, samples=samples,
                )
            )  # fmt: skip
            store.finish_task(run_id, TaskFinal(spec.task_id, "passed", attempts=1, wall_s=1.0))
            store.flush()
            store.finish_run(run_id, "passed", start + 60)


def _latest_run(store: Store) -> None:
    t0 = LATEST_START
    specs = [_spec(f"test_api[case={i}]", TaskKind.PYTEST, path="/suite/tests") for i in range(6)]
    specs += [
        _spec("test_db_migration", TaskKind.PYTEST, path="/suite/tests"),
        _spec("load_test"),
        _spec("flaky_upload"),
        _spec("gpu_kernel", requires={"GPU": 1}),
        _spec("still_pending"),
    ]
    store.create_run(LATEST, "nightly", "/suite/nightly.toml", {}, t0)
    store.add_tasks(LATEST, specs)
    store.record_workers(
        LATEST,
        [
            {"address": "tcp://10.0.0.7:40001", "name": "dtf-0", "host": "10.0.0.7",
             "resources": {"CPU": 8}, "hardware": {"machine": "x86_64",
             "cpu_model": "AMD EPYC 7B13", "logical_cores": 8}},
            {"address": "tcp://10.0.0.8:40002", "name": "dtf-1", "host": "10.0.0.8",
             "resources": {"CPU": 8, "GPU": 1}, "hardware": {"machine": "x86_64",
             "cpu_model": "Intel Xeon", "logical_cores": 4, "gpus": [{"name": "H100"}]}},
        ],
    )  # fmt: skip

    def attempt(task: str, n: int, outcome: str, at: float, **kw: object) -> None:
        store.add_attempt(
            AttemptResult(LATEST, task, n, outcome, started_at=at - 2, finished_at=at, **kw)  # type: ignore[arg-type]
        )

    def final(task: str, status: str, **kw: object) -> None:
        store.finish_task(LATEST, TaskFinal(task, status, **kw))  # type: ignore[arg-type]

    for i in range(6):
        attempt(f"test_api[case={i}]", 1, "passed", t0 + 60 + i, worker="dtf-0", wall_s=2.0)
        final(f"test_api[case={i}]", "passed", attempts=1, wall_s=2.0, worker="dtf-0")
    attempt(
        "test_db_migration", 1, "failed", t0 + 120, worker="dtf-0", wall_s=3.5,
        category="test-failure", message="AssertionError: expected 42 rows, got 41",
        exit_code=1, stdout_tail="tests/test_db.py::test_migration FAILED",
        stderr_tail="E   AssertionError: expected 42 rows, got 41",
    )  # fmt: skip
    final(
        "test_db_migration", "failed", category="test-failure", worker="dtf-0", attempts=1,
        message="AssertionError: expected 42 rows, got 41", wall_s=3.5,
    )  # fmt: skip
    attempt(
        "load_test", 1, "timed_out", t0 + 400, worker="dtf-1", wall_s=60.0, category="timeout",
        message="timed out and was killed", exit_code=-15,
    )  # fmt: skip
    final(
        "load_test", "timed_out", category="timeout", worker="dtf-1", attempts=1, wall_s=60.0,
        message="timed out and was killed",
    )  # fmt: skip
    for n, (worker, at) in enumerate([("dtf-0", t0 + 200), ("dtf-1", t0 + 900)], start=1):
        attempt(
            "flaky_upload", n, "error", at, worker=worker, category="worker-lost",
            message=f"worker died while running the task (tcp://10.0.0.{6 + n}:4000{n} after {n * 31} s)",
        )  # fmt: skip
    attempt("flaky_upload", 3, "passed", t0 + 950, worker="dtf-0", wall_s=1.2)
    final("flaky_upload", "passed", attempts=3, flaky=True, worker="dtf-0", wall_s=1.2)
    attempt(
        "gpu_kernel", 1, "unschedulable", t0 + 5, category="unschedulable",
        message="no worker has GPU=2 (workers: dtf-0: CPU=8; dtf-1: CPU=8, GPU=1)",
    )  # fmt: skip
    final(
        "gpu_kernel", "unschedulable", category="unschedulable", attempts=1,
        message="no worker has GPU=2 (workers: dtf-0: CPU=8; dtf-1: CPU=8, GPU=1)",
    )  # fmt: skip
    store.flush()
    # Left 'running' with one task pending: a run in flight, as the console sees it.


def seed(path: Path) -> Path:
    with Store(path) as store:
        _bench_runs(store)
        _latest_run(store)
    return path


# ---- shared by the console's tests ------------------------------------------------

SNAPSHOT_LABEL = "history: seeded.duckdb"


def make_app(db: Path, **kw: object):  # type: ignore[no-untyped-def]
    """The console on the seeded file, with the clock stopped at ``NOW``."""
    from dtf_tui.app import DtfApp
    from dtf_tui.sources.db import DbSource

    source = DbSource(str(db), clock=lambda: NOW)
    source.label = SNAPSHOT_LABEL  # the temporary path would change every screenshot
    return DtfApp(source, clock=lambda: NOW, **kw)  # type: ignore[arg-type]


async def wait_until(pilot, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Let the app run until ``condition()`` holds (data arrives on worker threads)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.02)
    await pilot.pause()


def screen_text(app) -> str:  # type: ignore[no-untyped-def]
    """The screen as plain text, as a user would read it."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
        legacy_windows=False,
    )  # fmt: skip
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=False)


def async_test(fn):  # type: ignore[no-untyped-def]
    """Run an async test on its own event loop (no pytest-asyncio in the dev set)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
