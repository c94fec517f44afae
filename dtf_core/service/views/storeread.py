"""Reading a :class:`~dtf_core.store.StoreReader` into snapshot dataclasses.

Shared by the console's local sources (``dtf_tui.sources.db``, a file opened
read-only per poll, and ``dtf_tui.sources.live``, the store its own coordinator
holds) and by ``dtf-core serve``, which builds the same snapshot for attached
consoles (:mod:`dtf_core.service.views.console`). Only the Store's public reads
are used: no SQL here.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dtf_core.cluster import hardware as hw
from dtf_core.errors import SEVERITY, Category
from dtf_core.service.views.snapshot import (
    AttemptInfo,
    ClusterSnapshot,
    ErrorEvent,
    RunInfo,
    SeriesKey,
    TaskRow,
    TrendSeries,
    WorkerInfo,
)
from dtf_core.store import StoreReader

# Units whose bigger numbers are better, when a task's spec does not say.
_HIGHER_IS_BETTER_UNITS = ("/s", "ops", "hz", "items", "bytes/s")


def severity_of(category: str | None) -> str:
    try:
        return SEVERITY[Category(category or "")]
    except ValueError:
        return "error"


def hardware_label(info: dict[str, Any] | None) -> str:
    return hw.label(info) if info else ""


def run_info(row: Mapping[str, Any], tasks: list[TaskRow] | None = None) -> RunInfo:
    total = int(row.get("tasks") or 0)
    finished = row["status"] != "running"
    if tasks is not None:
        done = sum(t.status not in ("pending", "running") for t in tasks)
        passed = sum(t.status in ("passed", "skipped") for t in tasks)
        failed = done - passed
    else:
        failed = int(row.get("failed") or 0)
        done = total if finished else 0
        passed = done - failed if finished else 0
    return RunInfo(
        run_id=row["run_id"],
        suite=row["suite"],
        status=row["status"],
        started_at=float(row.get("started_at") or 0.0),
        finished_at=row.get("finished_at"),
        total=total,
        done=done,
        passed=passed,
        failed=failed,
    )


def task_row(run_id: str, t: Mapping[str, Any]) -> TaskRow:
    """A row of ``Store.tasks()`` (also what ``dtf-core serve`` sends)."""
    return TaskRow(
        run_id=run_id,
        task_id=t["task_id"],
        kind=t.get("kind") or "",
        status=t["status"],
        category=t.get("category"),
        message=t.get("message") or "",
        attempts=int(t.get("attempts") or 0),
        wall_s=float(t.get("wall_s") or 0.0),
        worker=t.get("worker") or "",
        flaky=bool(t.get("flaky")),
    )


def task_rows(store: StoreReader, run_id: str) -> list[TaskRow]:
    """The run's tasks as the console shows them (the same rows as
    :func:`task_row` of ``Store.tasks()``, read without the columns it never shows)."""
    return [TaskRow(run_id, *t) for t in store.task_states(run_id)]


def task_row_changes(
    store: StoreReader, run_id: str, known_final: Sequence[str], new_ids: Sequence[str]
) -> list[TaskRow]:
    changed = store.task_state_changes(run_id, known_final, new_ids)
    return [TaskRow(run_id, *t) for t in changed]


def workers(store: StoreReader, run_id: str) -> list[WorkerInfo]:
    health = store.worker_states(run_id)
    out = []
    for w in store.workers(run_id):
        state, reason = health.get(w.get("name") or "", ("", ""))
        out.append(
            WorkerInfo(
                address=w["address"],
                name=w.get("name") or w["address"],
                host=w.get("host") or "",
                resources=w.get("resources") or {},
                status="recorded",
                hardware=hardware_label(w.get("hardware")),
                health=state,
                health_reason=reason,
            )
        )
    return out


def error_event(run_id: str, e: Mapping[str, Any], hardware: str = "") -> ErrorEvent:
    """A row of ``Store.errors()`` (also what ``dtf-core serve`` sends)."""
    return ErrorEvent(
        run_id=run_id,
        task_id=e["task_id"],
        attempt=int(e["attempt"]),
        ts=float(e.get("ts") or 0.0),
        category=e.get("category") or "infrastructure",
        severity=e.get("severity") or severity_of(e.get("category")),
        message=e.get("message") or "",
        worker=e.get("worker") or "",
        hardware=hardware,
    )


def errors(
    store: StoreReader, run_id: str, hardware: Mapping[str, str] | None = None
) -> list[ErrorEvent]:
    """The run's errors, each with its worker's hardware label (``hardware``:
    worker name -> label, when the caller has read the run's workers already)."""
    label = {w.name: w.hardware for w in workers(store, run_id)} if hardware is None else hardware
    return [
        error_event(run_id, e, label.get(e.get("worker") or "", "")) for e in store.errors(run_id)
    ]


def attempt_info(a: Mapping[str, Any]) -> AttemptInfo:
    """A row of ``Store.attempts()`` (also what ``dtf-core serve`` sends)."""
    return AttemptInfo(
        attempt=int(a["attempt"]),
        outcome=a["outcome"],
        category=a.get("category"),
        message=a.get("message") or "",
        worker=a.get("worker") or "",
        hardware=a.get("hardware") or "",
        started_at=float(a.get("started_at") or 0.0),
        wall_s=float(a.get("wall_s") or 0.0),
        exit_code=a.get("exit_code"),
        stdout_tail=a.get("stdout_tail") or "",
        stderr_tail=a.get("stderr_tail") or "",
        context=a.get("context") or {},
    )


def attempts(store: StoreReader, run_id: str, task_id: str) -> list[AttemptInfo]:
    return [attempt_info(a) for a in store.attempts(run_id, task_id)]


def all_series(store: StoreReader, max_runs: int = 100) -> dict[SeriesKey, TrendSeries]:
    """Per-run medians of every benchmark task x hardware, oldest run first.

    One query per run through the Store's public reads: history browsing is
    rare and runs on a worker thread, and it keeps dtf_core untouched.
    """
    runs = sorted(store.list_runs(limit=max_runs), key=lambda r: (r["started_at"], r["run_id"]))
    points: dict[SeriesKey, list[tuple[str, float, float]]] = defaultdict(list)
    units: dict[SeriesKey, str] = {}
    for run in runs:
        df = store.benchmark_samples(run["run_id"])
        if df.empty:
            continue
        for (task_id, hardware, unit), group in df.groupby(
            ["task_id", "hardware", "unit"], dropna=False, sort=True
        ):
            key = SeriesKey(str(task_id), "" if hardware is None else str(hardware))
            units[key] = str(unit or "s")
            value = statistics.median(group["value"].tolist())
            points[key].append((run["run_id"], float(run["started_at"] or 0.0), value))
    out = {}
    for key, pts in sorted(points.items(), key=lambda kv: (kv[0].benchmark, kv[0].hardware)):
        unit = units[key]
        out[key] = TrendSeries(
            key=key,
            unit=unit,
            run_ids=tuple(p[0] for p in pts),
            times=tuple(p[1] for p in pts),
            values=tuple(p[2] for p in pts),
            higher_is_better=unit.lower().endswith(_HIGHER_IS_BETTER_UNITS),
        )
    return out


TasksOf = Callable[[StoreReader, Mapping[str, Any]], list[TaskRow]]
ErrorsOf = Callable[[StoreReader, Mapping[str, Any], "Mapping[str, str] | None"], list[ErrorEvent]]
WorkersOf = Callable[[StoreReader, Mapping[str, Any]], list[WorkerInfo]]


def _run_workers(store: StoreReader, row: Mapping[str, Any]) -> list[WorkerInfo]:
    return workers(store, row["run_id"])


def _run_tasks(store: StoreReader, row: Mapping[str, Any]) -> list[TaskRow]:
    return task_rows(store, row["run_id"])


def _run_errors(
    store: StoreReader, row: Mapping[str, Any], hardware: Mapping[str, str] | None = None
) -> list[ErrorEvent]:
    return errors(store, row["run_id"], hardware)


def snapshot(
    store: StoreReader,
    label: str,
    now: float,
    runs: int = 20,
    errors_of: ErrorsOf = _run_errors,
    rows: list[Any] | None = None,
    tasks_of: TasksOf = _run_tasks,
    workers_of: WorkersOf = _run_workers,
) -> ClusterSnapshot:
    """The newest ``runs`` runs (``rows``: ``store.list_runs(runs)`` when the
    caller knows it); tasks and recorded workers (through ``tasks_of`` and
    ``workers_of``, which serve gives caches) of the focused one (the run in
    flight, else the newest); every listed run's errors (through ``errors_of``, which serve
    gives a cache of finished runs; the focused run's with the hardware of the
    workers just read)."""
    rows = store.list_runs(limit=runs) if rows is None else rows
    focused = next((r for r in rows if r["status"] == "running"), rows[0] if rows else None)
    tasks = tasks_of(store, focused) if focused else []
    infos = tuple(run_info(r, tasks if r is focused else None) for r in rows)
    recorded = workers_of(store, focused) if focused else []
    hardware = {w.name: w.hardware for w in recorded}
    errs = [e for r in rows for e in errors_of(store, r, hardware if r is focused else None)]
    errs.sort(key=lambda e: (e.ts, e.run_id, e.task_id, e.attempt))
    return ClusterSnapshot(
        source=label,
        taken_at=now,
        workers=tuple(recorded),
        runs=infos,
        tasks=tuple(tasks),
        errors=tuple(errs),
        note="" if rows else "no runs in the database yet",
    )


def live_worker(
    w: Mapping[str, Any],
    cpu: Iterable[float],
    memory: Iterable[float],
    hardware: str = "",
    health: tuple[str, str] = ("", ""),
) -> WorkerInfo:
    """A worker as the scheduler describes it now (``current_workers``), with the
    CPU/memory history the caller keeps; the console's live source and serve's
    snapshot build workers the same way."""
    return WorkerInfo(
        address=w["address"],
        name=str(w.get("name") or w["address"]),
        host=str(w.get("host") or ""),
        resources=dict(w.get("resources") or {}),
        status=str(w.get("status") or "running"),
        nthreads=int(w.get("nthreads") or 0),
        cpu=tuple(cpu),
        memory=tuple(memory),
        memory_limit=int(w.get("memory_limit") or 0),
        running=len(w.get("processing") or ()),
        hardware=hardware,
        health=health[0],
        health_reason=health[1],
    )
