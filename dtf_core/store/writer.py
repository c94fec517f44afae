"""The single writer of a run's results: buffered, one transaction per flush.

Attempts and task finals are buffered and go out together in :meth:`Writer.flush`.
A flush that fails (a full disk, say) rolls back and keeps its rows: nothing is
half-written, what earlier flushes committed stays, and the run can be resumed
from the file once the fault is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dtf_core import config, model
from dtf_core import errors as errs
from dtf_core.store.connection import Connection, registered

_TASK_COLS = ["run_id", "task_id", "name", "kind", "params", "requires"]
_ATTEMPT_COLS = [
    "run_id", "task_id", "attempt", "outcome", "category", "message", "worker", "hardware",
    "started_at", "finished_at", "wall_s", "cpu_s", "peak_rss_bytes", "exit_code",
    "stdout_tail", "stderr_tail", "code_fingerprint",
]  # fmt: skip
_TEST_COLS = [
    "run_id",
    "task_id",
    "attempt",
    "nodeid",
    "outcome",
    "duration_s",
    "message",
    "details",
]
# Run metadata keys that are columns of ``runs`` too (the baseline query filters on them).
_BRANCH_COLS = ["branch", "target_branch", "default_branch"]
_FINAL_COLS = ["status", "category", "message", "attempts", "flaky", "wall_s", "worker"]


def canonical(obj: Any) -> str:
    return json.dumps(obj if obj is not None else {}, sort_keys=True, default=str)


def _severity(category: str | None) -> str:
    if category is None:
        return "error"
    try:
        return errs.SEVERITY[errs.Category(category)]
    except ValueError:
        return "error"


class Writer:
    """Every write of a run goes through here; reads go through the reader that
    shares the same :class:`Connection`."""

    def __init__(self, db: Connection) -> None:
        self._db = db
        # The connection's own lock: one lock for buffer and connection, no order to keep.
        self._lock = db.lock
        self._attempts: list[model.AttemptResult] = []
        self._finals: list[tuple[str, model.TaskFinal]] = []
        self._workers: list[tuple[Any, ...]] = []  # rows of table workers
        self._buffer_rows = 0
        self._buffer_since: float | None = None

    # ---- runs and tasks: written at once ---------------------------------------

    def create_run(
        self, run_id: str, suite: str, suite_path: str, metadata: dict[str, Any], started_at: float
    ) -> None:
        self._db.run_id = run_id
        ci = metadata.get("ci") or {}
        branches = [metadata.get(k) or ci.get(k) for k in _BRANCH_COLS]
        self._db.execute(
            "INSERT INTO runs (run_id, suite, suite_path, status, started_at, finished_at,"
            f" metadata, {', '.join(_BRANCH_COLS)}) VALUES (?, ?, ?, 'running', ?, NULL, ?,"
            " ?, ?, ?)",
            [run_id, suite, suite_path, started_at, canonical(metadata), *branches],
        )

    def add_tasks(self, run_id: str, specs: Sequence[model.TaskSpec]) -> None:
        rows = [
            (run_id, s.task_id, s.name, model.TaskKind(s.kind).value, canonical(s.params),
             canonical(s.requires), canonical(s.to_dict()))
            for s in specs
        ]  # fmt: skip
        if rows:
            df = pd.DataFrame(rows, columns=[*_TASK_COLS, "spec"])
            with self._db.session() as con, registered(con, _src=df):
                con.execute(
                    f"INSERT INTO tasks ({', '.join(_TASK_COLS)}, spec, status)"
                    " SELECT *, 'pending' FROM _src ON CONFLICT DO NOTHING"
                )

    def record_workers(
        self, run_id: str, workers: Iterable[dict[str, Any]], *, buffered: bool = False
    ) -> None:
        """Store workers as seen; ``buffered``: with the next flush (a worker's
        hardware arrives with its first result: one transaction per worker cost
        a 500-worker run most of its time, docs/benchmarks.md "Scale")."""
        now = time.time()
        rows = [
            (run_id, w["address"], w.get("name"), w.get("host"), canonical(w.get("resources")),
             canonical(w.get("hardware")), now)
            for w in workers
        ]  # fmt: skip
        if not rows:
            return
        if buffered:
            with self._lock:
                self._workers.extend(rows)
                self._note_buffered(len(rows))
            return
        with self._db.session() as con:
            _upsert_workers(con, rows)

    def finish_run(self, run_id: str, status: str, finished_at: float) -> None:
        with self._lock:
            self.flush()
            self._db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                [status, finished_at, run_id],
            )
            if self._db.run_id == run_id:
                self._db.run_id = None

    # ---- attempts and finals: buffered -----------------------------------------

    def add_attempt(self, result: model.AttemptResult) -> None:
        with self._lock:
            self._db.run_id = result.run_id
            self._attempts.append(result)
            self._note_buffered(1 + len(result.tests) + len(result.samples))

    def finish_task(self, run_id: str, final: model.TaskFinal) -> None:
        with self._lock:
            self._db.run_id = run_id
            self._finals.append((run_id, final))
            self._note_buffered(1)

    def _note_buffered(self, rows: int) -> None:
        self._buffer_rows += rows
        if self._buffer_since is None:
            self._buffer_since = time.monotonic()

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._attempts or self._finals or self._workers)

    def should_flush(self) -> bool:
        with self._lock:
            if self._buffer_since is None:
                return False
            age = time.monotonic() - self._buffer_since
            limit = int(config.get("store.flush-rows"))
            return age >= config.seconds("store.flush-interval") or self._buffer_rows > limit

    def flush(self) -> int:
        """Write everything buffered in one transaction; return attempts newly stored."""
        with self._lock:
            if not self._attempts and not self._finals and not self._workers:
                return 0
            with self._db.transaction() as con:
                fresh = _fresh_attempts(con, self._attempts) if self._attempts else []
                if fresh:
                    _insert_attempts(con, fresh)
                if self._finals:
                    _upsert_finals(con, self._finals)
                if self._workers:
                    _upsert_workers(con, self._workers)
            # Cleared only after the commit: a failed flush keeps its rows for the next try.
            self._attempts, self._finals, self._workers = [], [], []
            self._buffer_rows, self._buffer_since = 0, None
            return len(fresh)


def _upsert_workers(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    # first_seen is kept from the first sighting; the rest follows the worker.
    with registered(con, _src=pd.DataFrame(rows)):
        con.execute(
            "INSERT INTO workers SELECT * FROM _src ON CONFLICT (run_id, address)"
            " DO UPDATE SET name = excluded.name, host = excluded.host,"
            " resources = excluded.resources, hardware = excluded.hardware"
        )


def _fresh_attempts(
    con: duckdb.DuckDBPyConnection, attempts: list[model.AttemptResult]
) -> list[model.AttemptResult]:
    """Drop attempts already stored, or repeated in the buffer (at-least-once delivery)."""
    unique = list({(a.run_id, a.task_id, a.attempt): a for a in reversed(attempts)}.items())
    unique.reverse()  # first delivery wins, in arrival order
    keys = pd.DataFrame([k for k, _ in unique], columns=["run_id", "task_id", "attempt"])
    with registered(con, _keys=keys):
        have = set(
            con.execute(
                "SELECT run_id, task_id, attempt FROM _keys"
                " SEMI JOIN attempts USING (run_id, task_id, attempt)"
            ).fetchall()
        )
    return [a for k, a in unique if k not in have]


def _insert_attempts(con: duckdb.DuckDBPyConnection, fresh: list[model.AttemptResult]) -> None:
    att = pd.DataFrame(
        [[getattr(a, c) for c in _ATTEMPT_COLS] for a in fresh], columns=_ATTEMPT_COLS
    )
    att["exit_code"] = pd.array([a.exit_code for a in fresh], dtype="Int32")  # None != NaN
    att["context"] = [canonical(a.context) if a.context else None for a in fresh]
    att["seq"] = np.arange(len(fresh), dtype=np.int32)
    att["unit"] = [a.unit for a in fresh]
    att["severity"] = [_severity(a.category) for a in fresh]
    att["ts"] = [a.finished_at or a.started_at or time.time() for a in fresh]
    with registered(con, _att=att):
        cols = ", ".join([*_ATTEMPT_COLS, "context"])  # named: migrations append columns
        con.execute(f"INSERT INTO attempts ({cols}) SELECT {cols} FROM _att")
        con.execute(
            "INSERT INTO errors SELECT run_id, task_id, attempt, ts, category, severity,"
            " message, worker FROM _att WHERE outcome NOT IN ('passed', 'skipped')"
        )
    tests = [
        (a.run_id, a.task_id, a.attempt, t.nodeid, t.outcome, float(t.duration_s), t.message,
         t.details or None)
        for a in fresh
        for t in a.tests
    ]  # fmt: skip
    if tests:
        with registered(con, _src=pd.DataFrame(tests, columns=_TEST_COLS)):
            cols = ", ".join(_TEST_COLS)
            con.execute(f"INSERT INTO test_results ({cols}) SELECT {cols} FROM _src")
    counts = np.array([len(a.samples) for a in fresh], dtype=np.int64)
    if counts.sum():
        # Samples travel as three numeric columns; the strings that describe
        # them (run, task, benchmark name, params, hardware, unit) are joined
        # in SQL from the attempt rows and the task rows: far less to copy.
        values = np.concatenate([np.asarray(a.samples, dtype=np.float64) for a in fresh])
        seq = np.repeat(np.arange(len(fresh), dtype=np.int32), counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        idx = (np.arange(len(values), dtype=np.int64) - starts).astype(np.int32)
        sdf = pd.DataFrame({"seq": seq, "idx": idx, "value": values})
        with registered(con, _att=att, _smp=sdf):
            con.execute(
                "INSERT INTO samples SELECT a.run_id, a.task_id, a.attempt,"
                " coalesce(t.name, a.task_id), coalesce(t.params, '{}'), a.hardware,"
                " s.idx, s.value, a.unit"
                " FROM _smp s JOIN _att a USING (seq)"
                " LEFT JOIN tasks t ON t.run_id = a.run_id AND t.task_id = a.task_id"
            )


def _upsert_finals(
    con: duckdb.DuckDBPyConnection, finals: list[tuple[str, model.TaskFinal]]
) -> None:
    # Last word wins, and DuckDB refuses to update one row twice in a statement.
    last = {(run_id, f.task_id): f for run_id, f in finals}
    rows = [
        (run_id, f.task_id, f.status, f.category, f.message, int(f.attempts), bool(f.flaky),
         float(f.wall_s), f.worker)
        for (run_id, _), f in last.items()
    ]  # fmt: skip
    cols = ["run_id", "task_id", *_FINAL_COLS]
    sets = ", ".join(f"{c} = excluded.{c}" for c in _FINAL_COLS)
    with registered(con, _src=pd.DataFrame(rows, columns=cols)):
        con.execute(
            # A final for a task add_tasks never saw still gets a row (named by its id).
            f"INSERT INTO tasks (name, {', '.join(cols)}) SELECT task_id, * FROM _src"
            f" ON CONFLICT (run_id, task_id) DO UPDATE SET {sets}"
        )
