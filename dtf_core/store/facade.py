"""The DuckDB file that holds every run: the only module that imports duckdb.

Schema decisions (see ``MIGRATIONS[0]``):

* Times are ``DOUBLE`` unix seconds (UTC), as the model carries them: no
  timezone conversions on the hot path, and arithmetic (durations) is plain.
* ``params``, ``requires``, ``metadata``, ``resources``, ``hardware`` (workers) and
  ``spec`` are DuckDB ``JSON``. ``params`` is always ``json.dumps(sort_keys=True)``
  so that identical parameters are identical strings and ``GROUP BY`` works.
* ``samples`` has no primary key: index maintenance would slow the bulk insert
  of millions of rows. Idempotency is enforced one level up, on
  ``attempts(run_id, task_id, attempt)``: an attempt that is already stored is
  skipped together with its tests, samples and error rows (Dask delivers results
  at least once).
* Migrations are append-only SQL scripts; ``schema_version`` records which ran.

DuckDB allows one writer per file, and while it is held, no other process can
open the file at all (not even read-only): :class:`Store` turns that into a
:class:`~dtf_core.errors.DatabaseLockedError` that says what to do.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from dtf_core import config, model
from dtf_core import errors as errs

MIGRATIONS: list[str] = [
    # 1: initial schema. Indexes only where a read needs one: an ART index on
    # samples or test_results more than doubled the time to flush 1M samples
    # (measured 0.34 s -> 0.81 s), while DuckDB's per-row-group min/max already
    # prunes reads by run_id, since rows arrive in run order.
    """
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY, suite VARCHAR NOT NULL, suite_path VARCHAR,
        status VARCHAR NOT NULL, started_at DOUBLE, finished_at DOUBLE, metadata JSON
    );
    CREATE TABLE tasks (
        run_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL, name VARCHAR, kind VARCHAR,
        params JSON, requires JSON, spec JSON, status VARCHAR NOT NULL, category VARCHAR,
        message VARCHAR, attempts INTEGER DEFAULT 0, flaky BOOLEAN DEFAULT false,
        wall_s DOUBLE, worker VARCHAR,
        PRIMARY KEY (run_id, task_id)
    );
    CREATE TABLE attempts (
        run_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL, attempt INTEGER NOT NULL,
        outcome VARCHAR NOT NULL, category VARCHAR, message VARCHAR, worker VARCHAR,
        hardware VARCHAR, started_at DOUBLE, finished_at DOUBLE, wall_s DOUBLE, cpu_s DOUBLE,
        peak_rss_bytes BIGINT, exit_code INTEGER, stdout_tail VARCHAR, stderr_tail VARCHAR,
        PRIMARY KEY (run_id, task_id, attempt)
    );
    CREATE TABLE test_results (
        run_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL, attempt INTEGER NOT NULL,
        nodeid VARCHAR NOT NULL, outcome VARCHAR NOT NULL, duration_s DOUBLE, message VARCHAR
    );
    CREATE TABLE samples (
        run_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL, attempt INTEGER NOT NULL,
        benchmark VARCHAR NOT NULL, params JSON, hardware VARCHAR, idx INTEGER NOT NULL,
        value DOUBLE NOT NULL, unit VARCHAR
    );
    CREATE TABLE errors (
        run_id VARCHAR NOT NULL, task_id VARCHAR NOT NULL, attempt INTEGER NOT NULL, ts DOUBLE,
        category VARCHAR, severity VARCHAR, message VARCHAR, worker VARCHAR
    );
    CREATE TABLE workers (
        run_id VARCHAR NOT NULL, address VARCHAR NOT NULL, name VARCHAR, host VARCHAR,
        resources JSON, hardware JSON, first_seen DOUBLE,
        PRIMARY KEY (run_id, address)
    );
    CREATE INDEX tasks_name ON tasks (name);  -- task_history() across runs
    """,
    # 2: which way is better for benchmarks that no suite file describes (imported
    # history); suite runs keep the flag in tasks.spec. Read by the analysis.
    """
    CREATE TABLE benchmark_info (
        benchmark VARCHAR PRIMARY KEY, higher_is_better BOOLEAN, updated_at DOUBLE
    );
    """,
    # 3: which code each attempt ran, "sha256:<12 hex> git:<12 hex>"
    # (AttemptResult.code_fingerprint; dtf_core.codeload). NULL for older rows.
    "ALTER TABLE attempts ADD COLUMN code_fingerprint VARCHAR;",
]

_TASK_COLS = ["run_id", "task_id", "name", "kind", "params", "requires"]
_ATTEMPT_COLS = [
    "run_id", "task_id", "attempt", "outcome", "category", "message", "worker", "hardware",
    "started_at", "finished_at", "wall_s", "cpu_s", "peak_rss_bytes", "exit_code",
    "stdout_tail", "stderr_tail",
    "code_fingerprint",  # migration 3
]  # fmt: skip
_IMPORT_COLS = [
    "run_id", "timestamp", "commit", "branch", "python", "benchmark", "params", "hardware",
    "task_id", "idx", "value", "unit", "higher_is_better",
]  # fmt: skip
_FINAL_COLS = ["status", "category", "message", "attempts", "flaky", "wall_s", "worker"]
_PID = re.compile(r"PID (\d+)")


def _canonical(obj: Any) -> str:
    return json.dumps(obj if obj is not None else {}, sort_keys=True, default=str)


def _severity(category: str | None) -> str:
    if category is None:
        return "error"
    try:
        return errs.SEVERITY[errs.Category(category)]
    except ValueError:
        return "error"


class Store:
    """One DuckDB file. Writes are buffered and go out in one transaction per
    :meth:`flush`; only one process (the coordinator) may open it read-write."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.path = pathlib.Path(path)
        self.read_only = read_only
        # DuckDB connections are not safe for concurrent use from several
        # threads; the coordinator's loop and its HTTP API may share a Store.
        self._lock = threading.RLock()
        self._attempts: list[model.AttemptResult] = []
        self._finals: list[tuple[str, model.TaskFinal]] = []
        self._buffer_rows = 0
        self._buffer_since: float | None = None
        if read_only and not self.path.exists():
            raise errs.StoreError(f"no database at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "Conflicting lock" in str(exc):
                m = _PID.search(str(exc))
                who = f"process {m.group(1)}" if m else "another process"
                raise errs.DatabaseLockedError(
                    f"{self.path} is locked by {who} (a coordinator holds it: browse through it, "
                    "or wait until it stops)"
                ) from exc
            raise errs.StoreError(f"cannot open {self.path}: {exc}") from exc
        except duckdb.Error as exc:
            raise errs.StoreError(f"cannot open {self.path}: {exc}") from exc
        try:
            self._migrate()
        except BaseException:
            self._con.close()
            raise

    # ---- lifecycle -----------------------------------------------------------

    def _migrate(self) -> None:
        con = self._con
        have = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchall()[0]
        if have is None or not have[0]:
            if self.read_only:
                raise errs.StoreError(f"{self.path} is not a dtf database (no schema_version)")
            con.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE)"
            )
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0]
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise errs.StoreError(
                f"{self.path} has schema version {current}, newer than this dtf "
                f"({len(MIGRATIONS)}): upgrade dtf"
            )
        if current < len(MIGRATIONS) and self.read_only:
            raise errs.StoreError(
                f"{self.path} has schema version {current}, older than this dtf "
                f"({len(MIGRATIONS)}): open it read-write once to migrate"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            con.begin()
            try:
                con.execute(MIGRATIONS[version - 1])
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, time.time()])
                con.commit()
            except BaseException:
                con.rollback()
                raise

    def schema_version(self) -> int:
        row = self._one("SELECT coalesce(max(version), 0) FROM schema_version")
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            if self._con is None:
                return
            try:
                if not self.read_only:
                    self.flush()
            finally:
                self._con.close()
                self._con = None  # type: ignore[assignment]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writes --------------------------------------------------------------

    def create_run(
        self, run_id: str, suite: str, suite_path: str, metadata: dict[str, Any], started_at: float
    ) -> None:
        self._exec(
            "INSERT INTO runs VALUES (?, ?, ?, 'running', ?, NULL, ?)",
            [run_id, suite, suite_path, started_at, _canonical(metadata)],
        )

    def add_tasks(self, run_id: str, specs: Sequence[model.TaskSpec]) -> None:
        rows = [
            (run_id, s.task_id, s.name, model.TaskKind(s.kind).value, _canonical(s.params),
             _canonical(s.requires), _canonical(s.to_dict()))
            for s in specs
        ]  # fmt: skip
        if rows:
            df = pd.DataFrame(rows, columns=[*_TASK_COLS, "spec"])
            self._insert_from(
                f"INSERT INTO tasks ({', '.join(_TASK_COLS)}, spec, status)"
                " SELECT *, 'pending' FROM _src ON CONFLICT DO NOTHING",
                df,
            )

    def add_attempt(self, result: model.AttemptResult) -> None:
        with self._lock:
            self._attempts.append(result)
            self._note_buffered(1 + len(result.tests) + len(result.samples))

    def finish_task(self, run_id: str, final: model.TaskFinal) -> None:
        with self._lock:
            self._finals.append((run_id, final))
            self._note_buffered(1)

    def _note_buffered(self, rows: int) -> None:
        self._buffer_rows += rows
        if self._buffer_since is None:
            self._buffer_since = time.monotonic()

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
            if not self._attempts and not self._finals:
                return 0
            con = self._con
            con.begin()
            try:
                fresh = self._fresh_attempts(self._attempts)
                if fresh:
                    self._insert_attempts(fresh)
                if self._finals:
                    self._upsert_finals(self._finals)
                con.commit()
            except BaseException:
                con.rollback()
                raise
            # Cleared only after the commit: a failed flush keeps its rows for the next try.
            self._attempts, self._finals = [], []
            self._buffer_rows, self._buffer_since = 0, None
            return len(fresh)

    def _fresh_attempts(self, attempts: list[model.AttemptResult]) -> list[model.AttemptResult]:
        """Drop attempts already stored, or repeated in the buffer (at-least-once delivery)."""
        unique = list({(a.run_id, a.task_id, a.attempt): a for a in reversed(attempts)}.items())
        unique.reverse()  # first delivery wins, in arrival order
        keys = pd.DataFrame([k for k, _ in unique], columns=["run_id", "task_id", "attempt"])
        with self._registered(_keys=keys):
            have = set(
                self._con.execute(
                    "SELECT run_id, task_id, attempt FROM _keys"
                    " SEMI JOIN attempts USING (run_id, task_id, attempt)"
                ).fetchall()
            )
        return [a for k, a in unique if k not in have]

    def _insert_attempts(self, fresh: list[model.AttemptResult]) -> None:
        att = pd.DataFrame(
            [[getattr(a, c) for c in _ATTEMPT_COLS] for a in fresh], columns=_ATTEMPT_COLS
        )
        att["exit_code"] = pd.array([a.exit_code for a in fresh], dtype="Int32")  # None != NaN
        att["seq"] = np.arange(len(fresh), dtype=np.int32)
        att["unit"] = [a.unit for a in fresh]
        att["severity"] = [_severity(a.category) for a in fresh]
        att["ts"] = [a.finished_at or a.started_at or time.time() for a in fresh]
        with self._registered(_att=att):
            cols = ", ".join(_ATTEMPT_COLS)  # named: migrations append columns
            self._con.execute(f"INSERT INTO attempts ({cols}) SELECT {cols} FROM _att")
            self._con.execute(
                "INSERT INTO errors SELECT run_id, task_id, attempt, ts, category, severity,"
                " message, worker FROM _att WHERE outcome NOT IN ('passed', 'skipped')"
            )
        tests = [
            (a.run_id, a.task_id, a.attempt, t.nodeid, t.outcome, float(t.duration_s), t.message)
            for a in fresh
            for t in a.tests
        ]
        if tests:
            self._insert_from("INSERT INTO test_results SELECT * FROM _src", pd.DataFrame(tests))
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
            with self._registered(_att=att, _smp=sdf):
                self._con.execute(
                    "INSERT INTO samples SELECT a.run_id, a.task_id, a.attempt,"
                    " coalesce(t.name, a.task_id), coalesce(t.params, '{}'), a.hardware,"
                    " s.idx, s.value, a.unit"
                    " FROM _smp s JOIN _att a USING (seq)"
                    " LEFT JOIN tasks t ON t.run_id = a.run_id AND t.task_id = a.task_id"
                )

    def _upsert_finals(self, finals: list[tuple[str, model.TaskFinal]]) -> None:
        # Last word wins, and DuckDB refuses to update one row twice in a statement.
        last = {(run_id, f.task_id): f for run_id, f in finals}
        rows = [
            (run_id, f.task_id, f.status, f.category, f.message, int(f.attempts), bool(f.flaky),
             float(f.wall_s), f.worker)
            for (run_id, _), f in last.items()
        ]  # fmt: skip
        cols = ["run_id", "task_id", *_FINAL_COLS]
        sets = ", ".join(f"{c} = excluded.{c}" for c in _FINAL_COLS)
        self._insert_from(
            # A final for a task add_tasks never saw still gets a row (named by its id).
            f"INSERT INTO tasks (name, {', '.join(cols)}) SELECT task_id, * FROM _src"
            f" ON CONFLICT (run_id, task_id) DO UPDATE SET {sets}",
            pd.DataFrame(rows, columns=cols),
        )

    def record_workers(self, run_id: str, workers: Iterable[dict[str, Any]]) -> None:
        now = time.time()
        rows = [
            (run_id, w["address"], w.get("name"), w.get("host"), _canonical(w.get("resources")),
             _canonical(w.get("hardware")), now)
            for w in workers
        ]  # fmt: skip
        if rows:
            # first_seen is kept from the first sighting; the rest follows the worker.
            self._insert_from(
                "INSERT INTO workers SELECT * FROM _src ON CONFLICT (run_id, address) DO UPDATE"
                " SET name = excluded.name, host = excluded.host,"
                " resources = excluded.resources, hardware = excluded.hardware",
                pd.DataFrame(rows),
            )

    def finish_run(self, run_id: str, status: str, finished_at: float) -> None:
        with self._lock:
            self.flush()
            self._exec(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                [status, finished_at, run_id],
            )

    # ---- reads ---------------------------------------------------------------

    def latest_run_id(self) -> str | None:
        row = self._one("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1")
        return str(row[0]) if row else None

    def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first, with task counts (``tasks``, ``failed``: not passed/skipped)."""
        return self._dicts(
            "SELECT r.*, count(t.task_id) AS tasks,"
            " count(t.task_id) FILTER (WHERE t.status NOT IN ('passed', 'skipped')) AS failed"
            " FROM runs r LEFT JOIN tasks t USING (run_id) GROUP BY ALL"
            " ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?",
            [limit],
            json_cols=("metadata",),
        )

    def get_run(self, run_id: str) -> dict[str, Any]:
        rows = self._dicts("SELECT * FROM runs WHERE run_id = ?", [run_id], json_cols=("metadata",))
        if not rows:
            raise errs.RunNotFoundError(
                f"no run '{run_id}' in {self.path}; `dtf-core runs --db {self.path}` lists runs"
            )
        return rows[0]

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT task_id, name, kind, params, requires, status, category, message, attempts,"
            " flaky, wall_s, worker FROM tasks WHERE run_id = ? ORDER BY task_id",
            [run_id],
            json_cols=("params", "requires"),
        )

    def task_spec(self, run_id: str, task_id: str) -> dict[str, Any] | None:
        """The stored ``TaskSpec.to_dict()`` of a task (for resume)."""
        row = self._one(
            "SELECT spec FROM tasks WHERE run_id = ? AND task_id = ?", [run_id, task_id]
        )
        return json.loads(row[0]) if row and row[0] else None

    def attempts(self, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM attempts WHERE run_id = ?"
        args: list[Any] = [run_id]
        if task_id is not None:
            sql += " AND task_id = ?"
            args.append(task_id)
        return self._dicts(sql + " ORDER BY task_id, attempt", args)

    def final_tests(self, run_id: str) -> list[dict[str, Any]]:
        """The rows of the last attempt that ran each (task_id, nodeid).

        Reruns only re-run the failures, so a later attempt overlays the earlier
        ones test by test. One attempt may hold two rows for a node id (pytest
        counts a call failure plus a teardown error as both): both are kept.
        ``flaky``: the final rows passed and an earlier attempt failed or errored.
        """
        return self._dicts(
            "SELECT task_id, nodeid, outcome, duration_s, message, attempt, worker,"
            " coalesce(outcome = 'passed' AND last_bad < last, false) AS flaky FROM ("
            "  SELECT r.*, a.worker,"
            "   max(r.attempt) OVER w AS last,"
            "   max(r.attempt) FILTER (WHERE r.outcome IN ('failed', 'error')) OVER w AS last_bad"
            "  FROM test_results r LEFT JOIN attempts a USING (run_id, task_id, attempt)"
            "  WHERE r.run_id = ? WINDOW w AS (PARTITION BY r.task_id, r.nodeid)"
            ") WHERE attempt = last ORDER BY task_id, nodeid, outcome",
            [run_id],
        )

    def benchmark_samples(self, run_id: str) -> pd.DataFrame:
        """Samples of each benchmark task's last attempt that produced any.

        Columns: task_id, attempt, benchmark, params (canonical JSON string),
        hardware, unit, idx, value.
        """
        with self._lock:
            return self._con.execute(
                "SELECT s.task_id, s.attempt, s.benchmark, s.params::VARCHAR AS params,"
                " s.hardware, s.unit, s.idx, s.value FROM samples s"
                " JOIN (SELECT task_id, max(attempt) AS attempt FROM samples WHERE run_id = $1"
                "       GROUP BY task_id) l USING (task_id, attempt)"
                " WHERE s.run_id = $1 ORDER BY s.task_id, s.hardware, s.idx",
                [run_id],
            ).df()

    def errors(self, run_id: str) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT * FROM errors WHERE run_id = ? ORDER BY ts, task_id, attempt", [run_id]
        )

    def workers(self, run_id: str) -> list[dict[str, Any]]:
        return self._dicts(
            "SELECT address, name, host, resources, hardware, first_seen FROM workers"
            " WHERE run_id = ? ORDER BY name, address",
            [run_id],
            json_cols=("resources", "hardware"),
        )

    def unfinished_tasks(self, run_id: str) -> list[str]:
        with self._lock:
            rows = self._con.execute(
                "SELECT task_id FROM tasks WHERE run_id = ? AND status = 'pending'"
                " ORDER BY task_id",
                [run_id],
            ).fetchall()
        return [r[0] for r in rows]

    def task_history(self, names: Sequence[str] | None = None) -> dict[str, float]:
        """Median ``wall_s`` per task name over every stored run (tasks that ran)."""
        sql = (
            "SELECT name, median(wall_s) FROM tasks WHERE wall_s > 0"
            " AND status IN ('passed', 'failed', 'timed_out')"
        )
        args: list[Any] = []
        if names is not None:
            if not names:
                return {}
            sql += " AND list_contains(?, name)"
            args.append(list(names))
        with self._lock:
            rows = self._con.execute(sql + " GROUP BY name", args).fetchall()
        return {str(n): float(v) for n, v in rows}

    def test_durations(self, recent_runs: int = 10) -> dict[str, float]:
        """Median duration per pytest node id over its last ``recent_runs`` runs
        (for packing tests into chunks by history)."""
        sql = """
            WITH r AS (
                SELECT nodeid, duration_s,
                       dense_rank() OVER (PARTITION BY nodeid ORDER BY run_id DESC) AS k
                FROM test_results WHERE outcome IN ('passed', 'failed', 'xfailed', 'xpassed')
            )
            SELECT nodeid, median(duration_s) FROM r WHERE k <= ? GROUP BY nodeid
        """
        with self._lock:
            rows = self._con.execute(sql, [recent_runs]).fetchall()
        return {str(n): float(v) for n, v in rows}

    # ---- analysis: samples by run, aggregation, history, bulk import ----------

    def baseline_run(self, run_id: str) -> str | None:
        """The latest run of the same suite, started before ``run_id``, that measured
        at least one of its benchmarks on the same hardware."""
        row = self._one(
            "WITH me AS (SELECT suite, started_at FROM runs WHERE run_id = $1),"
            " mine AS (SELECT DISTINCT benchmark, hardware FROM samples WHERE run_id = $1),"
            " cand AS (SELECT b.run_id, b.started_at FROM runs b, me WHERE b.suite = me.suite"
            "  AND (b.started_at < me.started_at"
            "       OR (b.started_at = me.started_at AND b.run_id < $1)))"
            " SELECT c.run_id FROM cand c"
            " WHERE EXISTS (SELECT 1 FROM samples s SEMI JOIN mine USING (benchmark, hardware)"
            "  WHERE s.run_id = c.run_id)"
            " ORDER BY c.started_at DESC, c.run_id DESC LIMIT 1",
            [run_id],
        )
        return str(row[0]) if row else None

    def samples_of_runs(self, run_ids: Sequence[str]) -> pd.DataFrame:
        """Every sample of the given runs (all attempts: each is a valid measurement).

        Columns: run_id, benchmark, params (canonical JSON string), hardware
        (``''`` when unknown), unit, value, higher_is_better (the task's own flag
        when its spec says so, else missing: the unit rule decides).
        """
        with self._lock:
            return self._con.execute(
                "SELECT s.run_id, s.benchmark, s.params::VARCHAR AS params,"
                " coalesce(s.hardware, '') AS hardware, coalesce(s.unit, 's') AS unit, s.value,"
                " coalesce(TRY_CAST(json_extract_string(t.spec, '$.higher_is_better')"
                "  AS BOOLEAN), i.higher_is_better) AS higher_is_better"
                " FROM samples s LEFT JOIN tasks t USING (run_id, task_id)"
                " LEFT JOIN benchmark_info i USING (benchmark)"
                " WHERE list_contains($1, s.run_id)"
                " ORDER BY s.benchmark, params, hardware, s.run_id, s.task_id, s.attempt, s.idx",
                [list(run_ids)],
            ).df()

    def aggregate_samples(
        self,
        by: Sequence[str],
        ci_ranks: Callable[[np.ndarray], pd.DataFrame],
        *,
        run_ids: Sequence[str] | None = None,
        benchmark: str | None = None,
    ) -> pd.DataFrame:
        """n, mean, median, stdev, mad, p5, p95, ci_low, ci_high per group of ``by``.

        ``by`` names dimensions (:data:`AGG_DIMENSIONS`, or ``param:NAME`` for one
        parameter); ``unit`` is always a group key, since values in different
        units never mix. ``ci_ranks(ns)`` maps sample counts to the 0-based order
        statistics ``(n, lo, hi)`` that bound the median's confidence interval.
        """
        exprs = {"unit": "coalesce(s.unit, 's')"}
        for name in by:
            exprs[name] = _dimension_sql(name)
        keys = ", ".join(f'{e} AS "{n}"' for n, e in exprs.items())
        where, args = _sample_filter(run_ids, benchmark)
        group = ", ".join(f'"{n}"' for n in exprs)
        with self._lock:
            con = self._con
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _agg AS SELECT "
                + keys
                + ", count(*) AS n, avg(s.value) AS mean, median(s.value) AS median,"
                " stddev_samp(s.value) AS stdev, mad(s.value) AS mad,"
                " quantile_cont(s.value, 0.05) AS p5, quantile_cont(s.value, 0.95) AS p95,"
                " list(s.value ORDER BY s.value) AS _sorted"
                " FROM samples s LEFT JOIN runs r USING (run_id)" + where + " GROUP BY " + group,
                args,
            )
            try:
                ns = con.execute("SELECT DISTINCT n FROM _agg").fetchnumpy()["n"]
                ranks = ci_ranks(np.asarray(ns, dtype=np.int64))
                with self._registered(_ci=ranks):
                    return con.execute(
                        "SELECT a.* EXCLUDE (_sorted), a._sorted[c.lo + 1] AS ci_low,"
                        " a._sorted[c.hi + 1] AS ci_high FROM _agg a JOIN _ci c USING (n)"
                        f" ORDER BY {group}"
                    ).df()
            finally:
                con.execute("DROP TABLE IF EXISTS _agg")

    def benchmark_history(
        self, *, benchmark: str | None = None, since: float | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
        """Per-run medians of every benchmark x params x hardware, oldest run first.

        Returns ``(keys, runs, points)``: ``keys`` has one row per series
        (sid, benchmark, params, hardware, unit, higher_is_better), ``runs`` one
        per run (rix, run_id, started_at, commit, branch), and ``points`` three
        NumPy arrays ``sid``, ``rix``, ``value`` sorted by series then run. Series
        and runs travel as integers: a million points with their strings would
        cost more to hand to Python than the whole analysis.
        """
        run_where = "WHERE started_at >= ?" if since is not None else ""
        name_where = " AND s.benchmark GLOB ?" if benchmark else ""
        with self._lock:
            con = self._con
            runs = con.execute(
                "SELECT (row_number() OVER (ORDER BY started_at, run_id) - 1)::INTEGER AS rix,"
                " run_id, started_at, json_extract_string(metadata, '$.commit') AS commit,"
                " json_extract_string(metadata, '$.branch') AS branch FROM runs "
                + run_where
                + " ORDER BY rix",
                [since] if since is not None else [],
            ).df()
            with self._registered(_runs=runs[["rix", "run_id"]]):
                keys = con.execute(
                    "WITH k AS (SELECT s.benchmark, s.params::VARCHAR AS params,"
                    "  coalesce(s.hardware, '') AS hardware, mode(coalesce(s.unit, 's')) AS unit"
                    "  FROM samples s SEMI JOIN _runs USING (run_id) WHERE true"
                    + name_where
                    + "  GROUP BY ALL),"
                    " d AS (SELECT name, arg_max(TRY_CAST(json_extract_string(spec,"
                    "  '$.higher_is_better') AS BOOLEAN), run_id) AS higher_is_better"
                    "  FROM tasks WHERE spec IS NOT NULL AND kind = 'benchmark' GROUP BY name)"
                    " SELECT (row_number() OVER (ORDER BY k.benchmark, k.params, k.hardware)"
                    "  - 1)::INTEGER AS sid, k.*,"
                    " coalesce(d.higher_is_better, i.higher_is_better) AS higher_is_better"
                    " FROM k LEFT JOIN d ON d.name = k.benchmark"
                    " LEFT JOIN benchmark_info i ON i.benchmark = k.benchmark ORDER BY sid",
                    [benchmark] if benchmark else [],
                ).df()
                with self._registered(_keys=keys[["sid", "benchmark", "params", "hardware"]]):
                    points = con.execute(
                        "WITH m AS (SELECT s.run_id, s.benchmark, s.params::VARCHAR AS params,"
                        "  coalesce(s.hardware, '') AS hardware, median(s.value) AS value"
                        "  FROM samples s WHERE true" + name_where + "  GROUP BY ALL)"
                        " SELECT k.sid, r.rix, m.value FROM m"
                        " JOIN _keys k USING (benchmark, params, hardware)"
                        " JOIN _runs r USING (run_id) ORDER BY k.sid, r.rix",
                        [benchmark] if benchmark else [],
                    ).fetchnumpy()
        arrays = {k: np.asarray(points[k]) for k in ("sid", "rix", "value")}
        return keys, runs, arrays

    def existing_run_ids(self, run_ids: Sequence[str]) -> list[str]:
        with self._lock:
            rows = self._con.execute(
                "SELECT run_id FROM runs WHERE list_contains(?, run_id) ORDER BY run_id",
                [list(run_ids)],
            ).fetchall()
        return [str(r[0]) for r in rows]

    def import_samples(self, frame: pd.DataFrame, *, suite: str, source: str) -> tuple[int, int]:
        """Store a validated history frame in one transaction; return (runs, samples).

        ``frame`` has one row per sample: run_id, timestamp (unix s), commit,
        branch, python (strings or missing), benchmark, params (canonical JSON),
        hardware, task_id, idx (the sample's position in its task), value,
        unit, higher_is_better (missing: the unit decides). Each run becomes a
        run with status ``imported`` whose samples belong to attempt 1 of their
        task. Imported runs get no ``tasks``/``attempts`` rows: nothing ran, and
        for a history of one sample per benchmark per run those rows (with their
        primary-key indexes) would cost 5x the samples themselves. A run id that
        is already stored refuses the whole file: imports never half-happen.
        """
        missing = [c for c in _IMPORT_COLS if c not in frame.columns]
        if missing:
            raise ValueError(f"import_samples() frame lacks {missing}")
        with self._lock:
            con = self._con
            con.begin()
            try:
                with self._registered(_frame=frame):
                    clash = con.execute(
                        "SELECT min(run_id), count(*) FROM runs"
                        " SEMI JOIN (SELECT DISTINCT run_id FROM _frame) USING (run_id)"
                    ).fetchall()[0]
                    if clash[1]:
                        more = f" (and {clash[1] - 1} more)" if clash[1] > 1 else ""
                        raise errs.ImportFileError(
                            f"{source}: run_id '{clash[0]}'{more} is already in {self.path}: "
                            "rename the run ids or import into another database"
                        )
                    # DuckDB reads only the columns each statement names, straight
                    # from the frame: no staging copy.
                    runs = con.execute(
                        "INSERT INTO runs SELECT run_id, ?, ?, 'imported', min(timestamp),"
                        " max(timestamp), json_object('commit', any_value(commit),"
                        " 'branch', any_value(branch), 'python', any_value(python),"
                        " 'imported_from', ?) FROM _frame GROUP BY run_id",
                        [suite, source, source],
                    ).fetchall()[0][0]
                    samples = con.execute(
                        "INSERT INTO samples SELECT run_id, task_id, 1, benchmark, params,"
                        " hardware, idx, value, unit FROM _frame"
                    ).fetchall()[0][0]
                    con.execute(
                        "INSERT INTO benchmark_info SELECT benchmark,"
                        " any_value(higher_is_better), ? FROM _frame"
                        " WHERE higher_is_better IS NOT NULL GROUP BY benchmark"
                        " ON CONFLICT (benchmark) DO UPDATE SET"
                        " higher_is_better = excluded.higher_is_better,"
                        " updated_at = excluded.updated_at",
                        [time.time()],
                    )
                con.commit()
            except BaseException:
                con.rollback()
                raise
        return int(runs), int(samples)

    # ---- helpers -------------------------------------------------------------

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self._lock:
            self._con.execute(sql, list(args))

    def _one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self._lock:
            # fetchall, not fetchone: DuckDB 2 refuses further work on a
            # connection whose last result was not read to the end.
            rows = self._con.execute(sql, list(args)).fetchall()
            return rows[0] if rows else None

    def _dicts(
        self, sql: str, args: Sequence[Any] = (), json_cols: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._con.execute(sql, list(args))
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
        out = [dict(zip(names, r, strict=True)) for r in rows]
        for d in out:
            for c in json_cols:
                if isinstance(d.get(c), str):
                    d[c] = json.loads(d[c])
        return out

    def _registered(self, **frames: pd.DataFrame) -> _Registered:
        return _Registered(self._con, frames)

    def _insert_from(self, sql: str, df: pd.DataFrame) -> None:
        """Run ``sql`` with ``df`` visible as the relation ``_src``."""
        with self._lock, self._registered(_src=df):
            self._con.execute(sql)


# Dimensions aggregate_samples() groups by; "param:NAME" adds one parameter.
AGG_DIMENSIONS: dict[str, str] = {
    "benchmark": "s.benchmark",
    "params": "s.params::VARCHAR",
    "hardware": "coalesce(s.hardware, '')",
    "run_id": "s.run_id",
    "suite": "r.suite",
    "commit": "json_extract_string(r.metadata, '$.commit')",
    "branch": "json_extract_string(r.metadata, '$.branch')",
    "python": "json_extract_string(r.metadata, '$.python')",
}
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _dimension_sql(name: str) -> str:
    if name in AGG_DIMENSIONS:
        return AGG_DIMENSIONS[name]
    if name.startswith("param:") and _PARAM_NAME.match(name[6:]):
        return f"json_extract_string(s.params, '$.{name[6:]}')"
    raise ValueError(f"unknown dimension {name!r}")


def _sample_filter(run_ids: Sequence[str] | None, benchmark: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if run_ids is not None:
        clauses.append("list_contains(?, s.run_id)")
        args.append(list(run_ids))
    if benchmark:
        clauses.append("s.benchmark GLOB ?")
        args.append(benchmark)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def read_table_file(path: str | os.PathLike[str], kind: str) -> pd.DataFrame:
    """Read a CSV (every column as text) or Parquet file with DuckDB's own readers.

    DuckDB reads Parquet without pyarrow, and its CSV sniffer is strict about
    ragged rows; both failures become ``ImportFileError`` naming the file.
    """
    reader = {
        "csv": "read_csv(?, header = true, all_varchar = true, delim = ',', quote = '\"',"
        " escape = '\"', strict_mode = true)",
        "parquet": "read_parquet(?)",
    }[kind]
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM {reader}", [str(path)]).df()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise errs.ImportFileError(f"{path}: not a readable {kind} file ({first})") from exc
    finally:
        con.close()


class _Registered:
    """Register DataFrames as views for one statement, and always unregister them."""

    def __init__(self, con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> None:
        self._con, self._frames = con, frames

    def __enter__(self) -> None:
        for name, df in self._frames.items():
            self._con.register(name, df)

    def __exit__(self, *exc: object) -> None:
        for name in self._frames:
            self._con.unregister(name)
