"""Benchmark history from elsewhere: reading CSV/Parquet files, and storing a
validated history frame as imported runs in one transaction."""

from __future__ import annotations

import os
import time

import duckdb
import pandas as pd

from dtf_core import errors as errs
from dtf_core.store.connection import Connection, registered

IMPORT_COLUMNS = [
    "run_id", "timestamp", "commit", "branch", "python", "benchmark", "params", "hardware",
    "task_id", "idx", "value", "unit", "higher_is_better",
]  # fmt: skip


def import_samples(
    db: Connection, frame: pd.DataFrame, *, suite: str, source: str
) -> tuple[int, int]:
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
    missing = [c for c in IMPORT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"import_samples() frame lacks {missing}")
    with db.transaction() as con, registered(con, _frame=frame):
        clash = con.execute(
            "SELECT min(run_id), count(*) FROM runs"
            " SEMI JOIN (SELECT DISTINCT run_id FROM _frame) USING (run_id)"
        ).fetchall()[0]
        if clash[1]:
            more = f" (and {clash[1] - 1} more)" if clash[1] > 1 else ""
            raise errs.ImportFileError(
                f"{source}: run_id '{clash[0]}'{more} is already in {db.path}: "
                "rename the run ids or import into another database"
            )
        # DuckDB reads only the columns each statement names, straight from the
        # frame: no staging copy.
        runs = con.execute(
            "INSERT INTO runs (run_id, suite, suite_path, status, started_at, finished_at,"
            " metadata, branch) SELECT run_id, ?, ?, 'imported', min(timestamp),"
            " max(timestamp), json_object('commit', any_value(commit),"
            " 'branch', any_value(branch), 'python', any_value(python),"
            " 'imported_from', ?), any_value(branch) FROM _frame GROUP BY run_id",
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
    return int(runs), int(samples)


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
