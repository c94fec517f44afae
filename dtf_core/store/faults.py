"""DuckDB's exceptions, mapped to dtf's :class:`~dtf_core.errors.StoreError` tree.

What DuckDB 2.0 raises, measured on a tmpfs that fills up and on damaged files:

* a full disk at COMMIT: ``TransactionException`` "Failed to commit: Could not
  write file ...wal: No space left on device"; the transaction is already gone
  (ROLLBACK then says "no transaction is active");
* a full disk while a big INSERT writes row groups straight to the file:
  ``IOException`` "Could not write file ...: No space left on device"; ROLLBACK
  works;
* a full disk during a checkpoint: ``FatalException``, and every later statement
  says "database has been invalidated": the connection must be closed;
* in every case the transactions committed before are intact when the file is
  opened again, so a run interrupted this way resumes without loss;
* garbage or an empty file: ``IOException`` "not a valid DuckDB database file";
  a truncated file: ``IOException`` "Could not read enough bytes"; a damaged
  block: plain ``duckdb.Error`` "Corrupt database file: computed checksum ...";
* another process holding the file: ``IOException`` "Conflicting lock is held in
  PROGRAM (PID n)";
* a file from a newer DuckDB (not produced here; DuckDB's own text):
  ``IOException`` "Trying to read a database file with version number 70, but we
  can only read versions between 64 and 69".

Errors that say dtf itself is wrong (a binder or parser error, a constraint) are
not mapped: they keep their traceback.
"""

from __future__ import annotations

import os
import re

import duckdb

from dtf_core import errors as errs

_FULL = ("No space left on device", "File too large", "Disk quota exceeded")
_CORRUPT = (
    "not a valid DuckDB database file",
    "Corrupt database file",
    "Could not read enough bytes",
    "checksum",
)
_TOO_NEW = ("version number", "newer version", "storage version")
_IO = (
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.PermissionException,
    duckdb.OutOfMemoryException,
)
_PID = re.compile(r"\(PID (\d+)\)")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    for prefix in ("IO Error: ", "FATAL Error: ", "TransactionContext Error: "):
        line = line.removeprefix(prefix)
    return line


def is_lock_conflict(exc: BaseException) -> bool:
    return "Conflicting lock" in str(exc)


def lock_holder(exc: BaseException) -> int | None:
    m = _PID.search(str(exc))
    return int(m.group(1)) if m else None


def describe_process(pid: int | None) -> str:
    """``process 123 (dtf-core run suite.toml)``: who holds the file, if we can tell."""
    if pid is None:
        return "another process"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return f"process {pid}"
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]  # the interpreter says nothing
    cmd = " ".join(os.path.basename(argv[0]) if i == 0 else a for i, a in enumerate(argv[:4]))
    return f"process {pid} ({cmd[:80]})" if cmd else f"process {pid}"


def is_fatal(exc: BaseException) -> bool:
    """DuckDB invalidated the database: only closing and reopening helps."""
    return isinstance(exc, duckdb.FatalException) or "has been invalidated" in str(exc)


def storage_error(
    exc: duckdb.Error, path: os.PathLike[str] | str, run_id: str | None = None
) -> errs.StoreError | None:
    """The dtf error for a DuckDB storage fault on ``path``, or None for a dtf bug.

    ``run_id``: the run being written, named in the advice to resume it.
    """
    text = str(exc)
    detail = first_line(exc)
    resume = (
        f"`dtf-core run --resume {run_id} --db {path}` finishes the run" if run_id else "try again"
    )
    if any(m in text for m in _FULL):
        return errs.StorageFullError(
            f"no space left for {path} ({detail}); what was committed is kept: "
            f"free space on its disk, then {resume}"
        )
    if any(m in text for m in _CORRUPT):
        return errs.CorruptDatabaseError(
            f"{path} is damaged or not a DuckDB database ({detail}): restore it from a "
            "backup, or give another --db"
        )
    if any(m in text for m in _TOO_NEW) and "read" in text:
        return errs.SchemaTooNewError(
            f"{path} was written by a newer DuckDB ({detail}): upgrade dtf, or give another --db"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        return errs.StoreError(
            f"DuckDB ran out of memory working on {path} ({detail}): set a larger "
            "memory limit or give the machine more memory"
        )
    if isinstance(exc, _IO) or is_fatal(exc) or "Could not write file" in text:
        return errs.StoreIOError(
            f"could not use {path} ({detail}); what was committed is kept: "
            f"check the disk, then {resume}"
        )
    return None
