"""``dtf-core workers``: each worker's health (healthy / degraded / quarantined),
why, and what it sampled last.

From the database (default): the workers of a run (the latest, or ``--run``)
as the run left them. From a live cluster (``--scheduler``): every connected
worker with what its heartbeats carry now, and the state a coordinator running
on that cluster last decided (kept on the scheduler; "unknown" when no run has
judged it).
"""

from __future__ import annotations

import time
from typing import Any

import click

from dtf_core.cli.common import (
    db_option,
    default_db,
    emit,
    format_option,
    handle_errors,
    run_option,
)


def register(group: click.Group) -> None:
    group.add_command(workers_cmd)


@click.command("workers")
@db_option
@run_option
@click.option(
    "--scheduler", metavar="ADDRESS", default=None,
    help="Ask a live cluster (tcp://host:8786) instead of the database.",
)  # fmt: skip
@format_option("text", "json")
@handle_errors
def workers_cmd(
    db: str | None, run_id: str | None, scheduler: str | None, fmt: str, output: str | None
) -> None:
    """Each worker's health state, the reason, and its last sample."""
    from dtf_core.reporting import workers as table
    from dtf_core.reporting.jsonout import render_json

    rows = _live(scheduler) if scheduler else _recorded(db or default_db(), run_id)
    if fmt == "json":
        emit(render_json({"workers": rows}), output)
    else:
        emit(table.render_text(rows) if rows else "no workers", output)


def _recorded(db_path: str, run_id: str | None) -> list[dict[str, Any]]:
    from dtf_core.cli.common import pick_run
    from dtf_core.store import StoreReader

    with StoreReader(db_path) as store:
        run = pick_run(store, run_id, db_path)
        health = {str(h["worker"]): dict(h) for h in store.worker_health(run)}
        seen = store.workers(run)
    rows: list[dict[str, Any]] = [
        {"name": w["name"], "address": w["address"], "health": health.pop(w["name"] or "", None)}
        for w in seen
    ]
    rows += [{"name": n, "address": h.get("address"), "health": h} for n, h in health.items()]
    return sorted(rows, key=lambda r: str(r["name"]))


def _live(scheduler: str) -> list[dict[str, Any]]:
    from dtf_core.cluster import embedded as cluster

    with cluster.open_cluster(scheduler) as handle:
        workers = cluster.current_workers(handle.client)
        decided = cluster.published_health(handle.client)
    now = time.time()
    rows = []
    for address, w in sorted(workers.items(), key=lambda aw: aw[1]["name"]):
        sample = dict(w.get("sample") or {})
        state = decided.get(w["name"], {})
        health = {
            **sample,
            "state": state.get("state", "unknown"),
            "reason": state.get("reason", "no run has judged it"),
            "since": state.get("since"),
            "heartbeat_age": now - w["last_seen"] if w.get("last_seen") else None,
        }
        rows.append({"name": w["name"], "address": address, "health": health})
    return rows
