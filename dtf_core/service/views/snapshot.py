"""What the console shows, as plain data: one :class:`ClusterSnapshot` per poll.

Every source (the DuckDB file, an in-process run, a remote coordinator) turns
what it knows into these frozen dataclasses, so that screens never care where
the data came from and a new source is one class. They hold no Textual types:
the benchmark and the tests build them without an app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

# How bad an error is, worst last: the bell and the highlighting key off this.
SEVERITIES = ("warning", "error", "critical")


def severity_rank(severity: str) -> int:
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 1


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    host: str = ""
    resources: Mapping[str, float] = field(default_factory=dict)
    status: str = "running"  # Dask's worker status; "gone" once it left; "recorded" from history
    nthreads: int = 0
    cpu: tuple[float, ...] = ()  # percent, oldest first (one sample per poll)
    memory: tuple[float, ...] = ()  # bytes, oldest first
    memory_limit: int = 0
    running: int = 0  # tasks executing on it now
    hardware: str = ""  # short hardware label, when known
    health: str = ""  # healthy | degraded | quarantined, as a run judged it ("" unknown)
    health_reason: str = ""

    @property
    def resources_text(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in sorted(self.resources.items()))


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    suite: str
    status: str  # running | passed | failed | cancelled
    started_at: float
    finished_at: float | None = None
    total: int = 0
    done: int = 0
    passed: int = 0
    failed: int = 0  # finished and not passed/skipped
    eta_s: float | None = None

    @property
    def in_flight(self) -> bool:
        return self.status == "running"

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.done if self.done else None

    def throughput(self, now: float) -> float:
        """Tasks per second over the run so far (or its whole length, once finished)."""
        end = self.finished_at if self.finished_at is not None else now
        elapsed = end - self.started_at
        return self.done / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True)
class TaskRow:
    run_id: str
    task_id: str
    kind: str = ""
    status: str = "pending"  # pending | running | one of dtf_core.model.FINAL_TASK_STATES
    category: str | None = None
    message: str = ""
    attempts: int = 0
    wall_s: float = 0.0
    worker: str = ""
    flaky: bool = False

    @cached_property
    def haystack(self) -> str:
        """What `/` filters on, lower-cased once per row (20,000 rows per keystroke)."""
        parts = (self.task_id, self.kind, self.status, self.category or "", self.worker)
        return " ".join(parts).lower() + (" flaky" if self.flaky else "")


@dataclass(frozen=True)
class ErrorEvent:
    run_id: str
    task_id: str
    attempt: int
    ts: float
    category: str
    severity: str
    message: str
    worker: str = ""
    hardware: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.run_id, self.task_id, self.attempt)


@dataclass(frozen=True)
class AttemptInfo:
    attempt: int
    outcome: str
    category: str | None = None
    message: str = ""
    worker: str = ""
    hardware: str = ""
    started_at: float = 0.0
    wall_s: float = 0.0
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    # A failed attempt's system snapshot from its worker (attempts.context): host,
    # OS, Python, packages, load, memory, disk, GPU, env, log. Empty otherwise.
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSnapshot:
    source: str  # what the data comes from, for the header
    taken_at: float
    workers: tuple[WorkerInfo, ...] = ()
    runs: tuple[RunInfo, ...] = ()  # newest first
    tasks: tuple[TaskRow, ...] = ()  # of the focused run: the one in flight, else the newest
    errors: tuple[ErrorEvent, ...] = ()  # oldest first
    throughput: float = 0.0  # tasks/s finished recently, cluster-wide
    note: str = ""  # a line worth showing (e.g. "starting the embedded cluster")
    problem: str = ""  # the source answers but is degraded: shown in the banner
    dashboard: str = ""  # Dask's dashboard, when one is on (the Workers screen links it)
    coordinator: CoordinatorInfo | None = None  # attached to `dtf-core serve`: who leads

    @property
    def focused_run(self) -> RunInfo | None:
        for run in self.runs:
            if run.in_flight:
                return run
        return self.runs[0] if self.runs else None


@dataclass(frozen=True)
class CoordinatorInfo:
    """The coordinator the console is attached to (``GET /v1/coordinator``)."""

    url: str  # the one that answered
    leader: bool
    since: float  # when it became the leader (or started standing by)
    pid: int = 0
    standbys: tuple[str, ...] = ()  # their URLs
    database: str = ""

    @property
    def identity(self) -> tuple[str, int, float]:
        """Changes exactly when another process (or a restart) leads."""
        return (self.url, self.pid, self.since)


@dataclass(frozen=True)
class SeriesKey:
    """One benchmark trend: a benchmark task (name and parameters) on one hardware."""

    benchmark: str
    hardware: str

    @property
    def label(self) -> str:
        return f"{self.benchmark} @ {self.hardware or 'unknown hardware'}"


@dataclass(frozen=True)
class TrendSeries:
    key: SeriesKey
    unit: str
    run_ids: tuple[str, ...]
    times: tuple[float, ...]  # run start, unix seconds
    values: tuple[float, ...]  # the run's median sample
    higher_is_better: bool = False
