"""Worker health as a time series (table ``worker_health``, migration 7), and
the durations the health rules compare a worker's tasks with.

Volume stays bounded: the coordinator writes a row per worker every
``dtf.health.store-interval`` plus one per change of state; :func:`prune`
(run at each run's start) thins rows older than ``downsample-after`` to the
last row per worker and hour, keeping every change of state, and deletes rows
older than ``retain``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import pandas as pd

from dtf_core.store.connection import Connection, registered
from dtf_core.store.rows import WorkerHealthRecord

COLUMNS = [
    "run_id", "worker", "address", "ts", "state", "reason", "changed", "rel_speed", "tasks",
    "cpu_pct", "mem_pct", "load1", "ncpu", "disk_free_bytes", "heartbeat_age", "gpus",
]  # fmt: skip


def append(db: Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Store health rows (keys of :data:`COLUMNS`; missing ones are NULL)."""
    data = [
        [json.dumps(r.get(c)) if c == "gpus" and r.get(c) is not None else r.get(c)
         for c in COLUMNS]
        for r in rows
    ]  # fmt: skip
    if not data:
        return
    df = pd.DataFrame(data, columns=COLUMNS)
    for col in ("tasks", "ncpu", "disk_free_bytes"):
        df[col] = pd.array([None if pd.isna(v) else int(v) for v in df[col]], dtype="Int64")
    df["changed"] = df["changed"].fillna(False).astype(bool)
    cols = ", ".join(COLUMNS)
    with db.session() as con, registered(con, _health=df):
        con.execute(f"INSERT INTO worker_health ({cols}) SELECT {cols} FROM _health")


def prune(db: Connection, now: float, downsample_after: float, retain: float) -> int:
    """Delete rows older than ``retain``; older than ``downsample_after`` keep
    the last row per worker and hour and every change of state. Returns the
    rows deleted."""
    before = _count(db)
    db.execute("DELETE FROM worker_health WHERE ts < ?", [now - retain])
    db.execute(
        """
        DELETE FROM worker_health WHERE ts < ? AND NOT changed AND (worker, ts) NOT IN (
            SELECT worker, max(ts) FROM worker_health WHERE ts < ?
            GROUP BY worker, floor(ts / 3600)
        )
        """,
        [now - downsample_after, now - downsample_after],
    )
    return before - _count(db)


def _count(db: Connection) -> int:
    row = db.one("SELECT count(*) FROM worker_health")
    return int(row[0]) if row else 0


def latest(db: Connection, run_id: str | None = None) -> list[WorkerHealthRecord]:
    """Each worker's last row (of ``run_id``, else of any run), by worker name,
    with ``since``: when it entered that state."""
    where = "WHERE run_id = ?" if run_id is not None else ""
    args: list[Any] = [run_id] if run_id is not None else []
    rows = db.dicts(
        f"""
        WITH h AS (SELECT * FROM worker_health {where}),
        last AS (SELECT * FROM h QUALIFY row_number() OVER (PARTITION BY worker ORDER BY ts DESC) = 1),
        since AS (SELECT worker, state, max(ts) AS since FROM h WHERE changed GROUP BY worker, state)
        SELECT last.*, coalesce(since.since, last.ts) AS since
        FROM last LEFT JOIN since USING (worker, state) ORDER BY worker
        """,  # noqa: E501
        args,
        json_cols=("gpus",),
    )
    return cast(list[WorkerHealthRecord], rows)


def states(db: Connection, run_id: str) -> dict[str, tuple[str, str]]:
    """Each worker's last state and reason in ``run_id``: what :func:`latest`
    says of them, without its ``since`` (a window over every row: ~4x the time,
    and serve's console asks at every build)."""
    rows = db.rows(
        # One row's state and reason together, even when two rows share a ts.
        "SELECT worker, arg_max(struct_pack(s := state, r := coalesce(reason, '')), ts)"
        " FROM worker_health WHERE run_id = ? GROUP BY worker",
        [run_id],
    )
    return {str(w): (str(last["s"]), str(last["r"])) for w, last in rows}


def series(db: Connection, run_id: str, worker: str | None = None) -> list[WorkerHealthRecord]:
    """A run's rows, oldest first (one worker's with ``worker``)."""
    sql = "SELECT *, ts AS since FROM worker_health WHERE run_id = ?"
    args: list[Any] = [run_id]
    if worker is not None:
        sql += " AND worker = ?"
        args.append(worker)
    return cast(list[WorkerHealthRecord], db.dicts(sql + " ORDER BY ts", args, json_cols=("gpus",)))


def baselines(db: Connection, workers: Sequence[str], exclude_run: str) -> dict[str, float]:
    """Each worker's usual ``rel_speed`` (median of its per-run medians in the
    stored history, other runs only): its own history, for the health rules."""
    if not workers:
        return {}
    rows = db.rows(
        """
        SELECT worker, median(speed) FROM (
            SELECT worker, run_id, median(rel_speed) AS speed FROM worker_health
            WHERE rel_speed > 0 AND run_id IS DISTINCT FROM ? AND list_contains(?, worker)
            GROUP BY worker, run_id
        ) GROUP BY worker
        """,
        [exclude_run, list(workers)],
    )
    return {str(w): float(v) for w, v in rows if v is not None}


def task_durations(db: Connection, task_ids: Sequence[str], recent_runs: int = 10) -> pd.DataFrame:
    """Passed attempts of these task ids over their last ``recent_runs`` runs:
    columns ``task_id``, ``worker``, ``wall_s`` (the same task's pace elsewhere)."""
    if not task_ids:
        return pd.DataFrame(columns=["task_id", "worker", "wall_s"])
    ids = pd.DataFrame({"task_id": list(task_ids)})
    with db.session() as con, registered(con, _ids=ids):
        return con.execute(
            """
            SELECT task_id, worker, wall_s FROM (
                SELECT a.task_id, a.worker, a.wall_s,
                       dense_rank() OVER (PARTITION BY a.task_id ORDER BY a.run_id DESC) AS k
                FROM attempts a SEMI JOIN _ids USING (task_id)
                WHERE a.outcome = 'passed' AND a.wall_s > 0
            ) WHERE k <= ?
            """,
            [recent_runs],
        ).df()
