"""The schema of a dtf database and its migrations.

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
  A file with a higher version than this dtf knows is refused, never written.
"""

from __future__ import annotations

import time

import duckdb

from dtf_core import errors as errs
from dtf_core.store import faults
from dtf_core.store.connection import Connection

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
    # 4: a failing test's traceback as pytest printed it (TestResult.details),
    # for the end-of-run summary and reports. NULL for older rows.
    "ALTER TABLE test_results ADD COLUMN details VARCHAR;",
    # 5: the branches a run's baseline follows (dtf_core.analysis.baseline): its
    # own, the one a pull/merge request targets, the repository's default. As
    # columns, because the baseline query filters on them; older runs get them
    # from their metadata (where `ci` kept the target).
    """
    ALTER TABLE runs ADD COLUMN branch VARCHAR;
    ALTER TABLE runs ADD COLUMN target_branch VARCHAR;
    ALTER TABLE runs ADD COLUMN default_branch VARCHAR;
    UPDATE runs SET
        branch = json_extract_string(metadata, '$.branch'),
        target_branch = coalesce(json_extract_string(metadata, '$.target_branch'),
                                 json_extract_string(metadata, '$.ci.target_branch')),
        default_branch = coalesce(json_extract_string(metadata, '$.default_branch'),
                                  json_extract_string(metadata, '$.ci.default_branch'));
    """,
    # 6: the worker's system snapshot for a failed attempt (AttemptResult.context:
    # host, OS, Python, packages, load, memory, disk, GPU, env, log), JSON.
    # NULL for attempts that did not fail, and for older rows.
    "ALTER TABLE attempts ADD COLUMN context JSON;",
    # 7: worker health as a time series (dtf_core/run/monitor.py): one row per
    # worker every dtf.health.store-interval and one per change of state
    # (changed = true); thinned and deleted by age (store/health.py). rel_speed:
    # the median of its tasks' durations over the same tasks' elsewhere.
    """
    CREATE TABLE worker_health (
        run_id VARCHAR, worker VARCHAR NOT NULL, address VARCHAR, ts DOUBLE NOT NULL,
        state VARCHAR NOT NULL, reason VARCHAR, changed BOOLEAN DEFAULT false,
        rel_speed DOUBLE, tasks INTEGER, cpu_pct DOUBLE, mem_pct DOUBLE, load1 DOUBLE,
        ncpu INTEGER, disk_free_bytes BIGINT, heartbeat_age DOUBLE, gpus JSON
    );
    """,
]


def migrate(db: Connection) -> None:
    """Bring the file up to ``len(MIGRATIONS)``; a read-only file must be there already."""
    path, read_only = db.path, db.read_only
    try:
        have = db.one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        )
        if have is None or not have[0]:
            if read_only:
                raise errs.StoreError(f"{path} is not a dtf database (no schema_version)")
            db.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE)"
            )
        current = version(db)
        if current > len(MIGRATIONS):
            raise errs.SchemaTooNewError(
                f"{path} has schema version {current}, newer than this dtf "
                f"({len(MIGRATIONS)}): upgrade dtf, or give another --db"
            )
        if current < len(MIGRATIONS) and read_only:
            raise errs.StoreError(
                f"{path} has schema version {current}, older than this dtf "
                f"({len(MIGRATIONS)}): open it read-write once to migrate"
            )
        for v in range(current + 1, len(MIGRATIONS) + 1):
            with db.transaction() as con:
                con.execute(MIGRATIONS[v - 1])
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [v, time.time()])
    except duckdb.Error as exc:  # not a storage fault: a DuckDB file that is not dtf's
        raise errs.StoreError(
            f"{path} is not a dtf database ({faults.first_line(exc)}): give another --db"
        ) from exc


def version(db: Connection) -> int:
    row = db.one("SELECT coalesce(max(version), 0) FROM schema_version")
    return int(row[0]) if row else 0
