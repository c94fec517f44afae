"""What happens during a run, as data.

The coordinator emits these to whoever listens (the CLI progress view, the
TUI, the HTTP service); failures are events, not log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    suite: str
    total: int
    workers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AttemptFailed:
    """An attempt did not pass; ``retry_in`` is set when it will run again."""

    run_id: str
    task_id: str
    attempt: int
    category: str
    message: str
    worker: str
    retry_in: float | None = None


@dataclass(frozen=True)
class TaskFinished:
    run_id: str
    task_id: str
    status: str
    category: str | None
    message: str
    wall_s: float
    worker: str
    flaky: bool
    done: int  # tasks finished so far in this run
    total: int
    eta_s: float | None = None  # from duration estimates (history), when known


@dataclass(frozen=True)
class TestsProgress:
    """Per-test outcomes streamed from a running pytest task (counts since the last one)."""

    __test__ = False  # a name pytest would otherwise try to collect

    run_id: str
    task_id: str
    counts: dict[str, int]


@dataclass(frozen=True)
class ClusterChanged:
    """The cluster under a run changed: ``scheduler-lost``, ``scheduler-back``."""

    run_id: str
    kind: str
    message: str


@dataclass(frozen=True)
class WorkerHealthChanged:
    """A worker's health state changed (``healthy``, ``degraded``, ``quarantined``)."""

    run_id: str
    worker: str
    address: str
    state: str
    reason: str
    previous: str


@dataclass(frozen=True)
class TaskSpeculated:
    """A straggling task got a copy on an idle worker; the first to finish wins."""

    run_id: str
    task_id: str
    attempt: int  # the copy's attempt
    worker: str  # where the copy runs
    straggler: str  # where the original runs
    reason: str


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: str
    counts: dict[str, int]
    duration_s: float


Event = (
    RunStarted
    | AttemptFailed
    | TaskFinished
    | TestsProgress
    | ClusterChanged
    | WorkerHealthChanged
    | TaskSpeculated
    | RunFinished
)
Listener = Callable[[Event], None]
