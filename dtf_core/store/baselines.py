"""The runs a run's baseline may be chosen from (the choice itself is
:mod:`dtf_core.analysis.baseline`).

A candidate is an earlier run of the same suite that passed (an imported run
counts: its samples are measurements like any other) and measured at least one
of the run's benchmarks on the same hardware (the label each sample carries,
:func:`dtf_core.cluster.hardware.label`). Only the newest candidate of each
branch comes back: the choice never needs an older one, and a history of
thousands of runs stays a handful of rows.
"""

from __future__ import annotations

from typing import Any

from dtf_core.store.connection import Connection

# What a baseline may be: a run that finished well (``imported`` has no tasks to fail).
GOOD_STATUSES = ("passed", "imported")


def run_branches(db: Connection, run_id: str) -> dict[str, Any] | None:
    """``run_id``, ``suite``, ``started_at`` and the three branch columns of one run."""
    rows = db.dicts(
        "SELECT run_id, suite, started_at, branch, target_branch, default_branch"
        " FROM runs WHERE run_id = ?",
        [run_id],
    )
    return rows[0] if rows else None


def baseline_candidates(db: Connection, run_id: str) -> list[dict[str, Any]]:
    """The newest candidate per branch (``run_id``, ``branch``, ``started_at``,
    ``status``, ``commit``), newest first; a NULL branch is a branch of its own."""
    return db.dicts(
        "WITH me AS (SELECT run_id, suite, started_at FROM runs WHERE run_id = $1),"
        " mine AS (SELECT DISTINCT benchmark, hardware FROM samples WHERE run_id = $1),"
        " cand AS (SELECT b.run_id, b.branch, b.started_at, b.status,"
        "  json_extract_string(b.metadata, '$.commit') AS commit FROM runs b, me"
        "  WHERE b.suite = me.suite AND list_contains($2, b.status)"
        "  AND (b.started_at < me.started_at"
        "       OR (b.started_at = me.started_at AND b.run_id < me.run_id))),"
        " measured AS (SELECT DISTINCT s.run_id FROM samples s"
        "  SEMI JOIN cand USING (run_id) SEMI JOIN mine USING (benchmark, hardware)),"
        " ranked AS (SELECT c.*, row_number() OVER (PARTITION BY c.branch"
        "  ORDER BY c.started_at DESC, c.run_id DESC) AS k"
        "  FROM cand c SEMI JOIN measured USING (run_id))"
        " SELECT run_id, branch, started_at, status, commit FROM ranked WHERE k = 1"
        " ORDER BY started_at DESC, run_id DESC",
        [run_id, list(GOOD_STATUSES)],
    )
