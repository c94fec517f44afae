"""The shapes of the rows the store hands out.

Reads return plain dicts (they go straight into JSON for ``serve`` and into the
reports), typed here so that callers see which keys exist. Sample reads return
DataFrames for speed; their columns are the keys of :class:`SampleRecord` and
:class:`RunSampleRecord` (``tests/unit/test_store_rows.py`` holds them to it).
"""

from __future__ import annotations

from typing import Any, TypedDict


class RunRecord(TypedDict):
    """A row of ``runs``; ``metadata`` is parsed JSON (commit, branch, python...)."""

    run_id: str
    suite: str
    suite_path: str | None
    status: str  # running | passed | failed | cancelled | imported
    started_at: float | None
    finished_at: float | None
    metadata: dict[str, Any]
    branch: str | None  # these three also sit in metadata; columns for the baseline query
    target_branch: str | None
    default_branch: str | None


class RunSummaryRecord(RunRecord):
    """A run with its task counts (``failed``: neither passed nor skipped)."""

    tasks: int
    failed: int


class TaskRecord(TypedDict):
    """A task of a run; ``params`` and ``requires`` are parsed JSON."""

    task_id: str
    name: str | None
    kind: str | None
    params: dict[str, Any]
    requires: dict[str, Any]
    status: str
    category: str | None
    message: str | None
    attempts: int
    flaky: bool
    wall_s: float | None
    worker: str | None


class AttemptRecord(TypedDict):
    """One attempt at a task, as the worker reported it (or dtf decided it)."""

    run_id: str
    task_id: str
    attempt: int
    outcome: str
    category: str | None
    message: str | None
    worker: str | None
    hardware: str | None
    started_at: float | None
    finished_at: float | None
    wall_s: float | None
    cpu_s: float | None
    peak_rss_bytes: int | None
    exit_code: int | None
    stdout_tail: str | None
    stderr_tail: str | None
    code_fingerprint: str | None
    # A failed attempt's system snapshot from its worker (dtf_core.worker.snapshot),
    # parsed JSON; None when the attempt did not fail (or predates it).
    context: dict[str, Any] | None


class FinalTestRecord(TypedDict):
    """The final result of one pytest node id (its last attempt that ran it)."""

    task_id: str
    nodeid: str
    outcome: str
    duration_s: float | None
    message: str | None
    details: str | None  # the traceback pytest printed (its --tb style)
    attempt: int
    worker: str | None
    flaky: bool


class ErrorRecord(TypedDict):
    """An attempt that did not pass, with its category's severity."""

    run_id: str
    task_id: str
    attempt: int
    ts: float | None
    category: str | None
    severity: str | None
    message: str | None
    worker: str | None


class ErrorContextRecord(ErrorRecord):
    """An error with its attempt's system snapshot (``AttemptRecord.context``)."""

    context: dict[str, Any] | None


class WorkerRecord(TypedDict):
    """A worker seen during a run; ``resources`` and ``hardware`` are parsed JSON."""

    address: str
    name: str | None
    host: str | None
    resources: dict[str, Any]
    hardware: dict[str, Any]
    first_seen: float | None


class WorkerHealthRecord(TypedDict):
    """A row of ``worker_health`` (``gpus`` parsed JSON); ``since``: when the
    worker entered ``state`` (for a series row, the row's own time)."""

    run_id: str | None
    worker: str
    address: str | None
    ts: float
    state: str  # healthy | degraded | quarantined
    reason: str | None
    changed: bool  # the state changed with this row
    rel_speed: float | None  # its tasks' durations / the same tasks' elsewhere (median)
    tasks: int | None  # observations behind rel_speed
    cpu_pct: float | None
    mem_pct: float | None
    load1: float | None
    ncpu: int | None
    disk_free_bytes: int | None
    heartbeat_age: float | None
    gpus: list[dict[str, Any]] | None
    since: float


class SampleRecord(TypedDict):
    """A column of :meth:`StoreReader.benchmark_samples` (one benchmark sample)."""

    task_id: str
    attempt: int
    benchmark: str
    params: str  # canonical JSON
    hardware: str | None
    unit: str | None
    idx: int
    value: float


class RunSampleRecord(TypedDict):
    """A column of :meth:`StoreReader.samples_of_runs` (one sample of a run)."""

    run_id: str
    benchmark: str
    params: str  # canonical JSON
    hardware: str  # '' when unknown
    unit: str
    value: float
    higher_is_better: bool | None  # missing: the unit decides


SAMPLE_COLUMNS: tuple[str, ...] = tuple(SampleRecord.__annotations__)
RUN_SAMPLE_COLUMNS: tuple[str, ...] = tuple(RunSampleRecord.__annotations__)
