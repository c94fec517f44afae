"""The data that flows between dtf's parts.

Plain dataclasses, no behaviour beyond (de)serialisation: the suite model that
``spec`` produces, the payload a worker executes, and the result it sends back.
Everything here pickles cheaply, because it crosses the Dask wire.

    Suite ──expand──> TaskSpec* ──coordinator──> TaskPayload ──worker──> AttemptResult
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any


class TaskKind(enum.StrEnum):
    PYTEST = "pytest"
    BENCHMARK = "benchmark"
    COMMAND = "command"


class Outcome(enum.StrEnum):
    """How one attempt (or, for the final row, one task) ended.

    ``passed``, ``failed``, ``skipped``, ``timed_out``, ``unschedulable`` and
    ``cancelled`` are the only final task states; ``error`` is an attempt that
    broke for an infrastructure reason (it may be retried).
    """

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    UNSCHEDULABLE = "unschedulable"
    CANCELLED = "cancelled"
    ERROR = "error"


# Priorities (a task's in its suite, a run's in dtf-core serve) lie within
# +-PRIORITY_LIMIT; higher runs first. A run's priority orders runs, a task's
# orders the tasks of one run (dtf_core.run.priority).
PRIORITY_LIMIT = 1000

FINAL_TASK_STATES = frozenset(
    {"passed", "failed", "skipped", "timed_out", "unschedulable", "cancelled"}
)

# Per-test outcomes, named as pytest's terminal summary names them.
TEST_OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


@dataclass(frozen=True)
class TaskSpec:
    """One schedulable unit after matrix expansion.

    ``task_id`` is deterministic (``name`` or ``name[k=v,...]``) so that Dask
    keys, DuckDB rows and retries all agree on identity.
    """

    task_id: str
    name: str
    kind: TaskKind
    root: str  # absolute directory of the suite file; relative paths and imports start here
    timeout: float  # seconds, enforced on the worker
    retries: int  # retries for transient categories (worker lost, infrastructure, resource)
    rerun_failures: int = 0  # reruns for genuine failures; fail-then-pass == flaky
    requires: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # the measured inputs and tuned settings
    tune: list[str] = field(default_factory=list)  # names in params that are tuned (`best` ranks)
    path: str | None = None  # pytest: file or directory, absolute after loading
    function: str | None = None  # benchmark: "module:callable"
    command: list[str] | None = None  # command: argv
    pytest_args: list[str] = field(default_factory=list)
    nodeids: list[str] = field(default_factory=list)  # pytest: run exactly these (a chunk)
    # pytest: this chunk's share of files split over several chunks, applied to
    # what pytest collects now ({"keep": {file: ids}, "drop": {file: ids}}; see
    # dtf_core.testing.split.assign). None: the targets alone say what runs.
    select: dict[str, dict[str, list[str]]] | None = None
    test_timeout: float | None = None  # pytest: per-test timeout, seconds
    repeat: int = 10
    warmup: int = 1
    unit: str = "s"  # benchmark sample unit; "s" means seconds measured by dtf
    higher_is_better: bool = False
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None  # absolute; defaults to root
    # Higher starts first among the run's queued tasks (never preempts a running one).
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The fields as they are (shared, not copied: the one caller serialises
        them at once, and ``asdict``'s deep copy was a fifth of a 10k-task run's
        coordinator time)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["kind"] = self.kind.value
        return d


@dataclass(frozen=True)
class ClusterSpec:
    """How a suite would like its *embedded* cluster; ignored with --scheduler."""

    workers: int | None = None
    threads_per_worker: int | None = None
    worker_resources: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Suite:
    name: str
    path: str  # absolute path of the suite file
    tasks: list[TaskSpec]
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    metadata: dict[str, Any] = field(default_factory=dict)
    # The suite's [dtf] table: dtf settings for its runs (``speculation``).
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskPayload:
    """What the coordinator ships to a worker for one attempt of one task."""

    run_id: str
    spec: TaskSpec
    attempt: int  # 1-based
    key: str  # the Dask key of the future that carries this payload
    only_nodeids: list[str] | None = None  # pytest reruns: just the failures
    # The git commit of the suite's directory, read once per run by whoever
    # started it (run metadata ``commit``); "" when not a git checkout.
    code_commit: str = ""


@dataclass
class TestResult:
    nodeid: str
    outcome: str  # one of TEST_OUTCOMES
    duration_s: float = 0.0
    message: str = ""
    # The failure's traceback as pytest printed it (its --tb style), capped:
    # the terminal summary and reports show the first few.
    details: str = ""


@dataclass
class AttemptResult:
    """What a worker sends back for one attempt. Never raises across the wire:
    failures are data (``outcome`` + ``category`` + ``message``)."""

    run_id: str
    task_id: str
    attempt: int
    outcome: str  # Outcome value
    category: str | None = None  # errors.Category value when not passed/skipped
    message: str = ""
    worker: str = ""
    hardware: str = ""  # short hardware label, e.g. "x86_64 AMD EPYC 7B13 2c"
    started_at: float = 0.0  # unix seconds
    finished_at: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    tests: list[TestResult] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # benchmark, warmup excluded
    unit: str = "s"
    worker_info: dict[str, Any] = field(default_factory=dict)  # hardware facts
    # A failed attempt: the state of its worker then (dtf_core.worker.snapshot),
    # plain data: host, OS, Python, packages, load, memory, disk, GPU, env, log.
    context: dict[str, Any] = field(default_factory=dict)
    # pytest chunks: node ids that never started because the process died
    # (a crash or a per-test timeout); the coordinator runs them in a new attempt.
    remaining: list[str] = field(default_factory=list)
    # pytest chunks given files (a first run): what pytest collected, in its
    # order ({nodeid, file, resources[, problem]}), so that the next run can be
    # split by test without collecting centrally.
    # None: not given files, or died before collecting.
    collected: list[dict[str, Any]] | None = None
    # pytest chunks: stopped between tests on the coordinator's request (a
    # worker was idle); ``remaining`` are then the tests it never started.
    yielded: bool = False
    # pytest chunks: tests handed to another task while this one went on (an
    # idle worker asked); the coordinator starts them once, from the progress
    # event or from here, whichever comes first.
    given: list[str] = field(default_factory=list)
    # Which code ran: "sha256:<12 hex> git:<12 hex>", either part absent when
    # unknown. sha256 covers the suite files a benchmark ran (dtf_core.codeload);
    # git is TaskPayload.code_commit.
    code_fingerprint: str = ""
    # HS256 signature set on the worker when it has a result key (security.py);
    # the coordinator verifies it before writing. Empty when signing is off.
    signature: str = ""


@dataclass
class TaskFinal:
    """The one final row of a task in a run (written once, when it ends)."""

    task_id: str
    status: str  # one of FINAL_TASK_STATES
    category: str | None = None
    message: str = ""
    attempts: int = 0
    flaky: bool = False
    wall_s: float = 0.0
    worker: str = ""
