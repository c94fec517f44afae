"""The two ways to hold a dtf database: :class:`StoreReader` (read-only, reads
only) and :class:`Store` (the single writer, which reads as well).

The SQL lives in the modules named after what it does: :mod:`~.schema`
(migrations), :mod:`~.writer` (a run's results), :mod:`~.reads` (one run),
:mod:`~.history` (across runs), :mod:`~.imports` (history files); every fault
DuckDB raises leaves :mod:`~.connection` as a :class:`~dtf_core.errors.StoreError`.

A reader should be open only while it asks: while any process holds the file,
no other process can open it read-write, so ``with StoreReader(path) as r: ...``
around the questions, and nothing else, keeps a reader from delaying a run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from dtf_core import config, model
from dtf_core.store import baselines, health, history, imports, reads, schema
from dtf_core.store.connection import Connection, Notify, to_stderr
from dtf_core.store.rows import (
    AttemptRecord,
    ErrorContextRecord,
    ErrorRecord,
    FinalTestRecord,
    RunRecord,
    RunSummaryRecord,
    TaskRecord,
    WorkerHealthRecord,
    WorkerRecord,
)
from dtf_core.store.writer import Writer


class StoreReader:
    """A dtf database opened read-only. It waits up to ``wait_s`` (default
    ``dtf.store.read-wait``) while a writer holds the file, then raises
    :class:`~dtf_core.errors.DatabaseLockedError` naming the holder."""

    def __init__(self, path: str | os.PathLike[str], *, wait_s: float | None = None) -> None:
        wait = config.seconds("store.read-wait") if wait_s is None else wait_s
        self._attach(Connection(path, read_only=True, wait_s=wait))

    def _attach(self, db: Connection) -> None:
        self._db = db
        # Reads on cursors of their own: never behind a flush (connection.ReadView).
        self._rdb = db.reads()
        self.path = db.path
        try:
            schema.migrate(db)
        except BaseException:
            db.close()
            raise

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """One row of any SQL (for tests and one-off scripts)."""
        return self._db.one(sql, args)

    # ---- one run (reads.py) ----------------------------------------------------

    def schema_version(self) -> int:
        return schema.version(self._rdb)

    def latest_run_id(self, suite: str | None = None, branch: str | None = None) -> str | None:
        """The newest run (of ``suite`` and on ``branch``, when given)."""
        return reads.latest_run_id(self._rdb, suite, branch)

    def list_runs(self, limit: int = 20) -> list[RunSummaryRecord]:
        """Newest first, with task counts (``tasks``, ``failed``: not passed/skipped)."""
        return reads.list_runs(self._rdb, limit)

    def run_counts(self) -> dict[str, int]:
        return reads.run_counts(self._rdb)

    def get_run(self, run_id: str) -> RunRecord:
        """The run, or :class:`~dtf_core.errors.RunNotFoundError`."""
        return reads.get_run(self._rdb, run_id)

    def tasks(self, run_id: str) -> list[TaskRecord]:
        return reads.tasks(self._rdb, run_id)

    def task_states(self, run_id: str) -> list[tuple[Any, ...]]:
        """What a console shows of each task: (task_id, kind, status, category,
        message, attempts, wall_s, worker, flaky), by task id."""
        return reads.task_states(self._rdb, run_id)

    def task_state_changes(
        self, run_id: str, known_final: Sequence[str], new_ids: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """Rows of :meth:`task_states` final now but not in ``known_final``, and ``new_ids``'."""
        return reads.task_state_changes(self._rdb, run_id, known_final, new_ids)

    def task_spec(self, run_id: str, task_id: str) -> dict[str, Any] | None:
        """The stored ``TaskSpec.to_dict()`` of a task (for resume)."""
        return reads.task_spec(self._rdb, run_id, task_id)

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
        return reads.attempts(self._rdb, run_id, task_id)

    def final_tests(self, run_id: str) -> list[FinalTestRecord]:
        """The rows of the last attempt that ran each (task_id, nodeid)."""
        return reads.final_tests(self._rdb, run_id)

    def benchmark_samples(self, run_id: str) -> pd.DataFrame:
        """Samples of each benchmark task's last attempt (columns: ``SampleRecord``)."""
        return reads.benchmark_samples(self._rdb, run_id)

    def errors(self, run_id: str) -> list[ErrorRecord]:
        return reads.errors(self._rdb, run_id)

    def errors_with_context(self, run_id: str) -> list[ErrorContextRecord]:
        """:meth:`errors` with each attempt's system snapshot (``context``)."""
        return reads.errors_with_context(self._rdb, run_id)

    def workers(self, run_id: str) -> list[WorkerRecord]:
        return reads.workers(self._rdb, run_id)

    def unfinished_tasks(self, run_id: str) -> list[str]:
        return reads.unfinished_tasks(self._rdb, run_id)

    # ---- worker health (health.py) ---------------------------------------------

    def worker_health(self, run_id: str | None = None) -> list[WorkerHealthRecord]:
        """Each worker's last health row (of ``run_id``, else of any run)."""
        return health.latest(self._rdb, run_id)

    def worker_states(self, run_id: str) -> dict[str, tuple[str, str]]:
        """Each worker's last (state, reason) in ``run_id``, by worker name."""
        return health.states(self._rdb, run_id)

    def health_series(self, run_id: str, worker: str | None = None) -> list[WorkerHealthRecord]:
        return health.series(self._rdb, run_id, worker)

    def worker_baselines(self, workers: Sequence[str], exclude_run: str) -> dict[str, float]:
        """Each worker's usual relative speed in earlier runs (its own history)."""
        return health.baselines(self._rdb, workers, exclude_run)

    def task_durations(self, task_ids: Sequence[str]) -> pd.DataFrame:
        """Passed attempts of these tasks in recent runs: task_id, worker, wall_s."""
        return health.task_durations(self._rdb, task_ids)

    # ---- across runs (history.py) ----------------------------------------------

    def task_history(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Median ``wall_s`` per task name over every stored run (tasks that ran)."""
        return history.task_history(self._rdb, names)

    def test_durations(self, recent_runs: int = 10) -> dict[str, float]:
        """Median duration per pytest node id over its last ``recent_runs`` runs."""
        return history.test_durations(self._rdb, recent_runs)

    def run_branches(self, run_id: str) -> dict[str, Any] | None:
        """``run_id``, ``suite``, ``started_at``, ``branch``, ``target_branch``,
        ``default_branch`` of one run (None when there is no such run)."""
        return baselines.run_branches(self._rdb, run_id)

    def baseline_candidates(self, run_id: str) -> list[dict[str, Any]]:
        """The newest earlier passed run of the same suite per branch that measured
        one of the run's benchmarks on the same hardware (``analysis.baseline`` chooses)."""
        return baselines.baseline_candidates(self._rdb, run_id)

    def tuned_settings(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per benchmark name: the parameter names its suite marks as tuned (``tune``)."""
        return history.tuned_settings(self._rdb, run_ids)

    def samples_of_runs(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Every sample of the given runs (columns: ``RunSampleRecord``)."""
        return history.samples_of_runs(self._rdb, run_ids)

    def aggregate_samples(
        self,
        by: Sequence[str],
        ci_ranks: Callable[[np.ndarray], pd.DataFrame],
        *,
        run_ids: Sequence[str] | None = None,
        benchmark: str | None = None,
    ) -> pd.DataFrame:
        """n, mean, median, stdev, mad, p5, p95, ci_low, ci_high per group of ``by``."""
        return history.aggregate_samples(
            self._rdb, by, ci_ranks, run_ids=run_ids, benchmark=benchmark
        )

    def benchmark_history(
        self,
        *,
        benchmark: str | None = None,
        since: float | None = None,
        branch: str | None = None,
        of_run: str | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
        """Per-run medians of every series (of ``of_run``'s series), as ``(keys, runs, points)``."""
        return history.benchmark_history(
            self._rdb, benchmark=benchmark, since=since, branch=branch, of_run=of_run
        )

    def existing_run_ids(self, run_ids: Sequence[str]) -> list[str]:
        return history.existing_run_ids(self._rdb, run_ids)


class Store(StoreReader):
    """The one process that writes the file (the coordinator, an import). Opening
    waits up to ``lock_timeout`` seconds (default ``dtf.store.lock-timeout``) for
    another holder to let go, saying so once through ``on_wait``. Writes are
    buffered and go out in one transaction per :meth:`flush`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float | None = None,
        on_wait: Notify | None = to_stderr,
    ) -> None:
        wait = config.seconds("store.lock-timeout") if lock_timeout is None else lock_timeout
        self._attach(Connection(path, read_only=False, wait_s=wait, on_wait=on_wait))
        self._writer = Writer(self._db)
        # Told (seconds, attempts stored) after each flush that wrote something:
        # the service's write-latency metric, and its console feed (what the
        # database shows moved).
        self.flush_listeners: list[Callable[[float, int], None]] = []

    @staticmethod
    def open_readonly(path: str | os.PathLike[str], *, wait_s: float | None = None) -> StoreReader:
        return StoreReader(path, wait_s=wait_s)

    def close(self) -> None:
        """Flush what is buffered and close; the file is closed even if the flush fails."""
        with self._db.lock:
            if self._db.closed:
                return
            try:
                self._writer.flush()
            finally:
                self._db.close()

    # ---- a run's results (writer.py) -------------------------------------------

    def create_run(
        self, run_id: str, suite: str, suite_path: str, metadata: dict[str, Any], started_at: float
    ) -> None:
        self._writer.create_run(run_id, suite, suite_path, metadata, started_at)

    def add_tasks(self, run_id: str, specs: Sequence[model.TaskSpec]) -> None:
        self._writer.add_tasks(run_id, specs)

    def add_attempt(self, result: model.AttemptResult) -> None:
        self._writer.add_attempt(result)

    def finish_task(self, run_id: str, final: model.TaskFinal) -> None:
        self._writer.finish_task(run_id, final)

    def should_flush(self) -> bool:
        return self._writer.should_flush()

    def flush(self) -> int:
        """Write everything buffered in one transaction; return attempts newly stored."""
        if not self.flush_listeners or not self._writer.pending:
            return self._writer.flush()
        started = time.perf_counter()
        stored = self._writer.flush()
        took = time.perf_counter() - started
        for listener in self.flush_listeners:
            listener(took, stored)
        return stored

    def record_workers(
        self, run_id: str, workers: Iterable[dict[str, Any]], *, buffered: bool = False
    ) -> None:
        self._writer.record_workers(run_id, workers, buffered=buffered)

    def finish_run(self, run_id: str, status: str, finished_at: float) -> None:
        self._writer.finish_run(run_id, status, finished_at)

    def add_health(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append worker health rows (written at once: a few per worker a minute)."""
        health.append(self._db, rows)

    def prune_health(self, now: float, downsample_after: float, retain: float) -> int:
        return health.prune(self._db, now, downsample_after, retain)

    # ---- history files (imports.py) --------------------------------------------

    def import_samples(self, frame: pd.DataFrame, *, suite: str, source: str) -> tuple[int, int]:
        """Store a validated history frame as imported runs, all or nothing."""
        return imports.import_samples(self._db, frame, suite=suite, source=source)
