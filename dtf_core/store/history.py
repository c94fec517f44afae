"""Reads across runs: durations for scheduling, samples, tuned settings,
aggregation and per-run benchmark history for the analysis."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dtf_core.store.connection import Connection, registered

# Dimensions aggregate_samples() groups by; "param:NAME" adds one parameter.
AGG_DIMENSIONS: dict[str, str] = {
    "benchmark": "s.benchmark",
    "params": "s.params::VARCHAR",
    "hardware": "coalesce(s.hardware, '')",
    "run_id": "s.run_id",
    "suite": "r.suite",
    "commit": "json_extract_string(r.metadata, '$.commit')",
    "branch": "r.branch",
    "python": "json_extract_string(r.metadata, '$.python')",
}
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def task_history(db: Connection, names: Sequence[str] | None = None) -> dict[str, float]:
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
    return {str(n): float(v) for n, v in db.rows(sql + " GROUP BY name", args)}


def test_durations(db: Connection, recent_runs: int = 10) -> dict[str, float]:
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
    return {str(n): float(v) for n, v in db.rows(sql, [recent_runs])}


def tuned_settings(db: Connection, run_ids: Sequence[str]) -> dict[str, list[str]]:
    """Per benchmark name: the parameter names its suite marks as tuned (the
    task spec's ``tune``; dtf_core.spec). Imported runs have no tasks: nothing."""
    rows = db.rows(
        "SELECT name, list_sort(list_distinct(flatten(list("
        " CAST(json_extract(spec, '$.tune') AS VARCHAR[])))))"
        " FROM tasks WHERE list_contains(?, run_id) AND kind = 'benchmark'"
        " AND json_array_length(json_extract(spec, '$.tune')) > 0 GROUP BY name",
        [list(run_ids)],
    )
    return {str(name): [str(k) for k in keys] for name, keys in rows}


def samples_of_runs(db: Connection, run_ids: Sequence[str]) -> pd.DataFrame:
    """Every sample of the given runs (all attempts: each is a valid measurement).

    Columns: those of :class:`~dtf_core.store.rows.RunSampleRecord`
    (``higher_is_better``: the task's own flag when its spec says so, else what an
    import recorded, else missing: the unit rule decides).
    """
    return db.df(
        "SELECT s.run_id, s.benchmark, s.params::VARCHAR AS params,"
        " coalesce(s.hardware, '') AS hardware, coalesce(s.unit, 's') AS unit, s.value,"
        " coalesce(TRY_CAST(json_extract_string(t.spec, '$.higher_is_better')"
        "  AS BOOLEAN), i.higher_is_better) AS higher_is_better"
        " FROM samples s LEFT JOIN tasks t USING (run_id, task_id)"
        " LEFT JOIN benchmark_info i USING (benchmark)"
        " WHERE list_contains($1, s.run_id)"
        " ORDER BY s.benchmark, params, hardware, s.run_id, s.task_id, s.attempt, s.idx",
        [list(run_ids)],
    )


def aggregate_samples(
    db: Connection,
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
    with db.session() as con:
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
            with registered(con, _ci=ranks):
                return con.execute(
                    "SELECT a.* EXCLUDE (_sorted), a._sorted[c.lo + 1] AS ci_low,"
                    " a._sorted[c.hi + 1] AS ci_high FROM _agg a JOIN _ci c USING (n)"
                    f" ORDER BY {group}"
                ).df()
        finally:
            con.execute("DROP TABLE IF EXISTS _agg")


def benchmark_history(
    db: Connection,
    *,
    benchmark: str | None = None,
    since: float | None = None,
    branch: str | None = None,
    of_run: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Per-run medians of every benchmark x params x hardware, oldest run first;
    with ``of_run``, only the series that run has samples of (a run's report:
    reading every series of a long-lived database for each run cost time
    in proportion to the whole history).

    Returns ``(keys, runs, points)``: ``keys`` has one row per series
    (sid, benchmark, params, hardware, unit, higher_is_better), ``runs`` one
    per run (rix, run_id, started_at, commit, branch), and ``points`` three
    NumPy arrays ``sid``, ``rix``, ``value`` sorted by series then run. Series
    and runs travel as integers: a million points with their strings would
    cost more to hand to Python than the whole analysis.
    """
    clauses = (["started_at >= ?"] if since is not None else []) + (
        ["branch = ?"] if branch is not None else []
    )
    run_args = [a for a in (since, branch) if a is not None]
    run_where = "WHERE " + " AND ".join(clauses) if clauses else ""
    name_where = " AND s.benchmark GLOB ?" if benchmark else ""
    name_args: list[Any] = [benchmark] if benchmark else []
    if of_run is not None:
        name_where += (
            " AND (s.benchmark, s.params::VARCHAR, coalesce(s.hardware, '')) IN"
            " (SELECT (benchmark, params::VARCHAR, coalesce(hardware, '')) FROM samples"
            "  WHERE run_id = ?)"
        )
        name_args.append(of_run)
    with db.session() as con:
        runs = con.execute(
            "SELECT (row_number() OVER (ORDER BY started_at, run_id) - 1)::INTEGER AS rix,"
            " run_id, started_at, json_extract_string(metadata, '$.commit') AS commit,"
            " branch FROM runs " + run_where + " ORDER BY rix",
            run_args,
        ).df()
        with registered(con, _runs=runs[["rix", "run_id"]]):
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
                name_args,
            ).df()
            with registered(con, _keys=keys[["sid", "benchmark", "params", "hardware"]]):
                points = con.execute(
                    "WITH m AS (SELECT s.run_id, s.benchmark, s.params::VARCHAR AS params,"
                    "  coalesce(s.hardware, '') AS hardware, median(s.value) AS value"
                    "  FROM samples s WHERE true" + name_where + "  GROUP BY ALL)"
                    " SELECT k.sid, r.rix, m.value FROM m"
                    " JOIN _keys k USING (benchmark, params, hardware)"
                    " JOIN _runs r USING (run_id) ORDER BY k.sid, r.rix",
                    name_args,
                ).fetchnumpy()
    arrays = {k: np.asarray(points[k]) for k in ("sid", "rix", "value")}
    return keys, runs, arrays


def existing_run_ids(db: Connection, run_ids: Sequence[str]) -> list[str]:
    rows = db.rows(
        "SELECT run_id FROM runs WHERE list_contains(?, run_id) ORDER BY run_id", [list(run_ids)]
    )
    return [str(r[0]) for r in rows]


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
