"""dtf's exceptions and the taxonomy of task failures.

Exceptions raised to the user (the CLI turns ``BadInputError`` into exit 2)::

    DtfError
    ├── BadInputError            bad input from the user: exit 2, nothing written
    │   ├── SpecError            a suite file is invalid (names file, task, key)
    │   ├── ImportFileError      a history file cannot be imported
    │   ├── OptionError          a command-line value is invalid
    │   ├── RunNotFoundError     a run id is not in the database
    │   ├── AuthError            a token was missing, invalid, expired or lacks the role
    │   └── UploadTooLargeError  an upload is above a size or entry limit (HTTP 413)
    ├── StoreError               the DuckDB file cannot be used: exit 3
    │   ├── DatabaseLockedError  another process holds the lock (after waiting)
    │   ├── StoreIOError         reading or writing the file failed
    │   │   └── StorageFullError the disk is full (or the file hit its size limit)
    │   ├── CorruptDatabaseError the file is not a DuckDB database, or is damaged
    │   └── SchemaTooNewError    a newer dtf (or DuckDB) wrote the file
    ├── ClusterError             no scheduler could be reached or started: exit 3
    └── ServiceError             the coordinator service could not be reached: exit 3
        └── ServiceBusyError     its queue is full (HTTP 429): try again later

Task failures are not exceptions but data: every failed attempt carries a
``Category`` chosen by :func:`classify_exception` (for errors Dask raises on the
client) or :func:`classify_exit` (for what a subprocess did on the worker). The
retry policy keys off the category.

Exit codes of every dtf command (docs/cli.md) live here too, next to the
exceptions that pick two of them, so that a command line and the service's
client (``dtf_core.service.submit``) both reach them without importing upward.
"""

from __future__ import annotations

import enum
import signal

# 0 passed, 1 something failed, 2 bad input, 3 dtf could not do its job, 130 cancelled:
# CI can tell "the tests failed" from "the infrastructure broke".
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OPERATIONAL, EXIT_CANCELLED = 0, 1, 2, 3, 130


def exit_code(status: str) -> int:
    """The exit code of a command whose run ended with ``status``.

    ``passed`` (and ``accepted``: `submit --no-wait` handed the run to a
    service) is 0, ``cancelled`` is 130, every other end (failed, timed out,
    unschedulable, a status this dtf does not know yet) is 1: an unknown status
    must never read as success.
    """
    if status in ("passed", "accepted"):
        return EXIT_OK
    if status == "cancelled":
        return EXIT_CANCELLED
    return EXIT_FAILED


class DtfError(Exception):
    """Base of every error dtf raises on purpose."""


class BadInputError(DtfError):
    """The user gave dtf something it cannot use. Exit code 2."""


class SpecError(BadInputError):
    def __init__(self, file: str, message: str, task: str | None = None, key: str | None = None):
        self.file, self.task, self.key, self.detail = file, task, key, message
        where = file
        if task:
            where += f": task '{task}'"
        if key:
            where += f": key '{key}'"
        super().__init__(f"{where}: {message}")


class ImportFileError(BadInputError):
    pass


class OptionError(BadInputError):
    pass


class StoreError(DtfError):
    pass


class DatabaseLockedError(StoreError):
    pass


class StoreIOError(StoreError):
    """DuckDB could not read or write the file. What was committed before stays."""


class StorageFullError(StoreIOError):
    """No space left on the database's disk (or a file size limit was hit)."""


class CorruptDatabaseError(StoreError):
    """The file is not a DuckDB database, or its blocks fail their checksums."""


class SchemaTooNewError(StoreError):
    """The file was written by a newer dtf schema (or a newer DuckDB storage format)."""


class ClusterError(DtfError):
    pass


class RunNotFoundError(BadInputError):
    pass


class AuthError(BadInputError):
    """A token was refused. ``status`` is the HTTP answer: 401 (missing, invalid,
    expired) or 403 (valid, but the role is not enough). The message never
    contains the token or the secret."""

    def __init__(self, message: str, status: int = 401):
        self.status = status
        super().__init__(message)


class ServiceError(DtfError):
    """The coordinator service could not be reached or failed to answer."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        # True when trying another coordinator (a standby) is safe: nothing was
        # received, or the request only reads.
        self.unreachable = unreachable


class UploadTooLargeError(BadInputError):
    """An upload is above one of the service's limits (size, unpacked size, entries)."""


class ServiceBusyError(ServiceError):
    """The service's queue is full (HTTP 429); ``retry_after`` is the server's
    hint in seconds."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Category(enum.StrEnum):
    """Why an attempt did not pass."""

    TEST_FAILURE = "test-failure"  # the code under test said no
    TIMEOUT = "timeout"  # the task outran its timeout and was killed
    WORKER_LOST = "worker-lost"  # the worker died or left while running it
    UNSCHEDULABLE = "unschedulable"  # no worker has the resources it requires
    RESOURCE = "resource"  # out of memory, disk, file handles
    INFRASTRUCTURE = "infrastructure"  # scheduler lost, import failed on worker, dtf bug
    BAD_SPEC = "bad-spec"  # the task cannot run as written (usage error, bad args)
    SECURITY = "security"  # a result failed verification
    CANCELLED = "cancelled"  # the user or the run cancelled it


SEVERITY = {
    Category.TEST_FAILURE: "error",
    Category.TIMEOUT: "error",
    Category.WORKER_LOST: "critical",
    Category.UNSCHEDULABLE: "error",
    Category.RESOURCE: "critical",
    Category.INFRASTRUCTURE: "critical",
    Category.BAD_SPEC: "error",
    Category.SECURITY: "critical",
    Category.CANCELLED: "warning",
}

_OOM_MARKERS = ("MemoryError", "Cannot allocate memory", "out of memory", "OOM", "std::bad_alloc")
_RESOURCE_MARKERS = ("No space left on device", "Too many open files")


def classify_exception(exc: BaseException) -> tuple[Category, str]:
    """Map an exception seen on the client (usually from Dask) to a category."""
    name = type(exc).__name__
    text = str(exc)
    if name == "KilledWorker":
        return Category.WORKER_LOST, f"worker died while running the task ({text})"
    if name == "NoValidWorkerError":
        return Category.UNSCHEDULABLE, "no worker has the resources this task requires"
    if name in ("CancelledError", "FutureCancelledError"):
        if "scheduler-connection-lost" in text or "lost" in text:
            return Category.INFRASTRUCTURE, "lost the connection to the scheduler"
        return Category.CANCELLED, "cancelled"
    if isinstance(exc, MemoryError):
        return Category.RESOURCE, "out of memory"
    if isinstance(exc, OSError) and any(m in text for m in _RESOURCE_MARKERS):
        return Category.RESOURCE, text
    if isinstance(exc, (ImportError, ModuleNotFoundError)):
        return Category.INFRASTRUCTURE, f"import failed on the worker: {text}"
    if isinstance(exc, (TimeoutError, ConnectionError, OSError)) or name in (
        "CommClosedError",
        "StreamClosedError",
    ):
        return Category.INFRASTRUCTURE, f"{name}: {text}"
    return Category.INFRASTRUCTURE, f"{name}: {text}"


def classify_exit(
    kind: str, exit_code: int | None, stderr_tail: str = "", timed_out: bool = False
) -> tuple[Category | None, str]:
    """Map how a task's subprocess ended to a category (``None`` == passed).

    ``kind`` is the task kind: pytest's exit codes mean more than a shell's.
    """
    if timed_out:
        return Category.TIMEOUT, "timed out and was killed"
    if exit_code == 0:
        return None, ""
    oom = any(m in stderr_tail for m in _OOM_MARKERS)
    if exit_code is not None and exit_code < 0:
        sig = -exit_code
        try:
            signame = signal.Signals(sig).name
        except ValueError:
            signame = f"signal {sig}"
        if sig == signal.SIGKILL and oom:
            return Category.RESOURCE, "killed by SIGKILL after running out of memory"
        if sig == signal.SIGKILL:
            return Category.RESOURCE, "killed by SIGKILL (likely the out-of-memory killer)"
        return Category.TEST_FAILURE, f"killed by {signame}"
    if oom:
        return Category.RESOURCE, f"exited {exit_code}: out of memory"
    if any(m in stderr_tail for m in _RESOURCE_MARKERS):
        return Category.RESOURCE, f"exited {exit_code}: {_first_marker(stderr_tail)}"
    if kind == "pytest":
        if exit_code == 1:
            return Category.TEST_FAILURE, "tests failed"
        if exit_code == 2:
            return Category.TEST_FAILURE, "pytest was interrupted (collection errors?)"
        if exit_code == 3:
            return Category.INFRASTRUCTURE, "pytest internal error"
        if exit_code == 4:
            return Category.BAD_SPEC, "pytest usage error (check path and pytest_args)"
        return Category.TEST_FAILURE, f"pytest exited {exit_code}"
    if exit_code == 127:
        return Category.BAD_SPEC, "command not found (exit 127)"
    if exit_code == 126:
        return Category.BAD_SPEC, "command not executable (exit 126)"
    return Category.TEST_FAILURE, f"exited {exit_code}"


def _first_marker(text: str) -> str:
    for m in _RESOURCE_MARKERS:
        if m in text:
            return m
    return ""
