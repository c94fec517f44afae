"""Reads of one run: what the reports, ``--resume`` and the console ask about it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import pandas as pd

from dtf_core import errors as errs
from dtf_core.store.connection import Connection
from dtf_core.store.rows import (
    AttemptRecord,
    ErrorContextRecord,
    ErrorRecord,
    FinalTestRecord,
    RunRecord,
    RunSummaryRecord,
    TaskRecord,
    WorkerRecord,
)


def latest_run_id(
    db: Connection, suite: str | None = None, branch: str | None = None
) -> str | None:
    """The newest run (of ``suite`` and on ``branch``, when given)."""
    conds = [(c, v) for c, v in (("suite", suite), ("branch", branch)) if v is not None]
    where = ("WHERE " + " AND ".join(f"{c} = ?" for c, _ in conds)) if conds else ""
    args = [v for _, v in conds]
    row = db.one(
        f"SELECT run_id FROM runs {where} ORDER BY started_at DESC, run_id DESC LIMIT 1", args
    )
    return str(row[0]) if row else None


def list_runs(db: Connection, limit: int = 20) -> list[RunSummaryRecord]:
    """Newest first, with task counts (``tasks``, ``failed``: not passed/skipped)."""
    rows = db.dicts(
        "SELECT r.*, count(t.task_id) AS tasks,"
        " count(t.task_id) FILTER (WHERE t.status NOT IN ('passed', 'skipped')) AS failed"
        " FROM runs r LEFT JOIN tasks t USING (run_id) GROUP BY ALL"
        " ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?",
        [limit],
        json_cols=("metadata",),
    )
    return cast(list[RunSummaryRecord], rows)


def run_counts(db: Connection) -> dict[str, int]:
    """How many runs the file holds in each status (the service's metrics)."""
    return {str(s): int(n) for s, n in db.rows("SELECT status, count(*) FROM runs GROUP BY 1")}


def get_run(db: Connection, run_id: str) -> RunRecord:
    rows = db.dicts("SELECT * FROM runs WHERE run_id = ?", [run_id], json_cols=("metadata",))
    if not rows:
        raise errs.RunNotFoundError(
            f"no run '{run_id}' in {db.path}; `dtf-core runs --db {db.path}` lists runs"
        )
    return cast(RunRecord, rows[0])


_TASK_COLUMNS = (
    "SELECT task_id, name, kind, params, requires, status, category, message, attempts,"
    " flaky, wall_s, worker FROM tasks"
)


def tasks(db: Connection, run_id: str) -> list[TaskRecord]:
    rows = db.dicts(
        _TASK_COLUMNS + " WHERE run_id = ? ORDER BY task_id",
        [run_id],
        json_cols=("params", "requires"),
    )
    return cast(list[TaskRecord], rows)


# What a console shows of a task, in the order of its fields
# (dtf_core.service.views.snapshot.TaskRow after run_id), NULLs as the row's
# defaults: tuples, no JSON to decode. A console build reads these during a run,
# on the cores the run needs; the dicts of :func:`tasks` cost it three times as much.
_TASK_STATE = (
    "SELECT task_id, coalesce(kind, ''), status, category, coalesce(message, ''),"
    " coalesce(attempts, 0), coalesce(wall_s, 0.0), coalesce(worker, ''),"
    " coalesce(flaky, false) FROM tasks WHERE run_id = ?"
)


def task_states(db: Connection, run_id: str) -> list[tuple[Any, ...]]:
    """A run's tasks as a console shows them (:data:`_TASK_STATE`), by task id."""
    return db.rows(_TASK_STATE + " ORDER BY task_id", [run_id])


def task_state_changes(
    db: Connection, run_id: str, known_final: Sequence[str], new_ids: Sequence[str]
) -> list[tuple[Any, ...]]:
    """The rows of :func:`task_states` that a reader holding every other row
    lacks: tasks final now and not in ``known_final``, and the tasks ``new_ids``."""
    return db.rows(
        _TASK_STATE + " AND ((status <> 'pending' AND NOT list_contains(?, task_id))"
        " OR list_contains(?, task_id)) ORDER BY task_id",
        [run_id, list(known_final), list(new_ids)],
    )


def task_spec(db: Connection, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The stored ``TaskSpec.to_dict()`` of a task (for resume)."""
    row = db.one("SELECT spec FROM tasks WHERE run_id = ? AND task_id = ?", [run_id, task_id])
    return json.loads(row[0]) if row and row[0] else None


def attempts(db: Connection, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
    sql = "SELECT * FROM attempts WHERE run_id = ?"
    args: list[Any] = [run_id]
    if task_id is not None:
        sql += " AND task_id = ?"
        args.append(task_id)
    rows = db.dicts(sql + " ORDER BY task_id, attempt", args, json_cols=("context",))
    return cast(list[AttemptRecord], rows)


def final_tests(db: Connection, run_id: str) -> list[FinalTestRecord]:
    """The rows of the last attempt that ran each (task_id, nodeid).

    Reruns only re-run the failures, so a later attempt overlays the earlier
    ones test by test. One attempt may hold two rows for a node id (pytest
    counts a call failure plus a teardown error as both): both are kept.
    ``flaky``: the final rows passed and an earlier attempt failed or errored.
    """
    rows = db.dicts(
        "SELECT task_id, nodeid, outcome, duration_s, message, details, attempt, worker,"
        " coalesce(outcome = 'passed' AND last_bad < last, false) AS flaky FROM ("
        "  SELECT r.*, a.worker,"
        "   max(r.attempt) OVER w AS last,"
        "   max(r.attempt) FILTER (WHERE r.outcome IN ('failed', 'error')) OVER w AS last_bad"
        "  FROM test_results r LEFT JOIN attempts a USING (run_id, task_id, attempt)"
        "  WHERE r.run_id = ? WINDOW w AS (PARTITION BY r.task_id, r.nodeid)"
        ") WHERE attempt = last ORDER BY task_id, nodeid, outcome",
        [run_id],
    )
    return cast(list[FinalTestRecord], rows)


def benchmark_samples(db: Connection, run_id: str) -> pd.DataFrame:
    """Samples of each benchmark task's last attempt that produced any.

    Columns: those of :class:`~dtf_core.store.rows.SampleRecord`.
    """
    return db.df(
        "SELECT s.task_id, s.attempt, s.benchmark, s.params::VARCHAR AS params,"
        " s.hardware, s.unit, s.idx, s.value FROM samples s"
        " JOIN (SELECT task_id, max(attempt) AS attempt FROM samples WHERE run_id = $1"
        "       GROUP BY task_id) l USING (task_id, attempt)"
        " WHERE s.run_id = $1 ORDER BY s.task_id, s.hardware, s.idx",
        [run_id],
    )


def errors(db: Connection, run_id: str) -> list[ErrorRecord]:
    rows = db.dicts("SELECT * FROM errors WHERE run_id = ? ORDER BY ts, task_id, attempt", [run_id])
    return cast(list[ErrorRecord], rows)


def errors_with_context(db: Connection, run_id: str) -> list[ErrorContextRecord]:
    """:func:`errors` with each attempt's system snapshot: kilobytes per row, so
    only for who shows them (the API on request), not for every console poll."""
    rows = db.dicts(
        "SELECT e.*, a.context FROM errors e LEFT JOIN attempts a USING (run_id, task_id, attempt)"
        " WHERE e.run_id = ? ORDER BY e.ts, e.task_id, e.attempt",
        [run_id],
        json_cols=("context",),
    )
    return cast(list[ErrorContextRecord], rows)


def workers(db: Connection, run_id: str) -> list[WorkerRecord]:
    rows = db.dicts(
        "SELECT address, name, host, resources, hardware, first_seen FROM workers"
        " WHERE run_id = ? ORDER BY name, address",
        [run_id],
        json_cols=("resources", "hardware"),
    )
    return cast(list[WorkerRecord], rows)


def unfinished_tasks(db: Connection, run_id: str) -> list[str]:
    rows = db.rows(
        "SELECT task_id FROM tasks WHERE run_id = ? AND status = 'pending' ORDER BY task_id",
        [run_id],
    )
    return [r[0] for r in rows]
