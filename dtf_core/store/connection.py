"""One open DuckDB file: waiting for its lock, and running statements on it with
every storage fault turned into a dtf error (see :mod:`dtf_core.store.faults`).

DuckDB lets one process hold a file read-write, and while it does no other
process can open it, not even read-only. So a writer waits for the lock (up to
``dtf.store.lock-timeout``: a reader holds it only for as long as its query
takes), and a reader waits briefly (``dtf.store.read-wait``) before it gives up
and says who holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import duckdb
import pandas as pd

from dtf_core import errors as errs
from dtf_core.store import faults

Notify = Callable[[str], None]


def to_stderr(message: str) -> None:
    print(f"dtf: {message}", file=sys.stderr, flush=True)


def connect(
    path: pathlib.Path, *, read_only: bool, wait_s: float, on_wait: Notify | None
) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying while another process holds its lock, for up to ``wait_s``."""
    deadline = time.monotonic() + wait_s
    delay, told = 0.02, False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            if not faults.is_lock_conflict(exc):
                mapped = faults.storage_error(exc, path)
                fallback = errs.StoreError(f"cannot open {path}: {faults.first_line(exc)}")
                raise (mapped or fallback) from exc
            holder = faults.describe_process(faults.lock_holder(exc))
            left = deadline - time.monotonic()
            if left <= 0:
                raise errs.DatabaseLockedError(
                    _locked_message(path, holder, read_only, wait_s)
                ) from exc
            if not told and on_wait is not None:
                on_wait(f"waiting for the lock on {path} held by {holder} (up to {wait_s:g} s) ...")
                told = True
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.2)


def _locked_message(path: pathlib.Path, holder: str, read_only: bool, waited: float) -> str:
    after = f" after {waited:g} s" if waited > 0 else ""
    if read_only:
        return (
            f"{path} is locked by {holder}{after} (a coordinator holds it: browse through it, "
            "or wait until it stops)"
        )
    return (
        f"{path} is still locked by {holder}{after} (a coordinator or a reader holds it): "
        "wait until it ends, give a longer --lock-timeout, or use another --db"
    )


class Connection:
    """A DuckDB connection that one or several threads share (a thread lock
    serialises it: DuckDB connections are not safe for concurrent use), with the
    mapping of storage faults to :class:`~dtf_core.errors.StoreError`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        read_only: bool,
        wait_s: float = 0.0,
        on_wait: Notify | None = None,
    ) -> None:
        self.path = pathlib.Path(path)
        self.read_only = read_only
        self.lock = threading.RLock()
        # The run being written, named when a fault's message says how to resume.
        self.run_id: str | None = None
        if read_only and not self.path.exists():
            raise errs.StoreError(f"no database at {self.path}")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con: duckdb.DuckDBPyConnection | None = connect(
            self.path, read_only=read_only, wait_s=wait_s, on_wait=on_wait
        )
        self._reads: ReadView | None = None

    @property
    def closed(self) -> bool:
        return self._con is None

    def reads(self) -> Connection:
        """The same database for reads that must not wait behind this connection's
        lock (a flush, another thread's statement): see :class:`ReadView`."""
        with self.lock:
            if self._reads is None:
                self._reads = ReadView(self)
            return self._reads

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the same open database (DuckDB's ``cursor``)."""
        with self.lock:
            if self._con is None:
                raise errs.StoreError(f"{self.path} is already closed")
            return self._con.cursor()

    def close(self) -> None:
        with self.lock:
            if self._reads is not None:
                self._reads.close()
            con, self._con = self._con, None
            if con is not None:
                try:
                    con.close()
                except duckdb.Error as exc:
                    raise self._mapped(exc) from exc

    def _mapped(self, exc: duckdb.Error) -> Exception:
        return faults.storage_error(exc, self.path, self.run_id) or exc

    @contextlib.contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The raw connection, held by this thread, with faults mapped on the way out."""
        with self.lock:
            if self._con is None:
                raise errs.StoreError(f"{self.path} is already closed")
            try:
                yield self._con
            except duckdb.Error as exc:
                mapped = self._mapped(exc)
                if mapped is exc:
                    raise
                raise mapped from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT; on any error the transaction is rolled back (DuckDB
        may have ended it already: a failed COMMIT leaves none to roll back)."""
        with self.session() as con:
            con.begin()
            try:
                yield con
                con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.rollback()
                raise

    # ---- one statement -------------------------------------------------------

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        with self.session() as con:
            con.execute(sql, list(args))

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.session() as con:
            # fetchall, never fetchone: DuckDB 2 refuses further work on a
            # connection whose last result was not read to the end.
            return con.execute(sql, list(args)).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.rows(sql, args)
        return rows[0] if rows else None

    def df(self, sql: str, args: Sequence[Any] = ()) -> pd.DataFrame:
        with self.session() as con:
            return con.execute(sql, list(args)).df()

    def dicts(
        self, sql: str, args: Sequence[Any] = (), json_cols: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        with self.session() as con:
            cur = con.execute(sql, list(args))
            names = [d[0] for d in cur.description or ()]
            rows = cur.fetchall()
        out = [dict(zip(names, r, strict=True)) for r in rows]
        for d in out:
            for c in json_cols:
                if isinstance(d.get(c), str):
                    d[c] = json.loads(d[c])
        return out


class ReadView(Connection):
    """Reads of one open database, each thread on a cursor of its own.

    Why: the writer's connection is one object behind one lock, so a reader
    waited for every flush and every other thread's statement (the service's
    API behind twenty runs' writes). DuckDB's cursors are further connections
    to the same database; each sees what was committed when its statement
    began (MVCC), and they run beside each other and beside the writer. Reads
    here therefore never see a write transaction still open on the owner:
    nothing reads inside one (the writer reads through its own connection)."""

    def __init__(self, owner: Connection) -> None:  # no super().__init__: opens nothing
        self.path, self.read_only, self.run_id = owner.path, owner.read_only, None
        self.lock = threading.RLock()  # guards the cursors' list and their root only
        # Threads' cursors come from this one, not from the owner: a thread's first
        # read must not wait for the owner's lock either.
        self._root = owner.cursor()
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = [self._root]
        self._con = None
        self._reads = None
        self._open = True

    @property
    def closed(self) -> bool:
        return not self._open

    def reads(self) -> Connection:
        return self

    def close(self) -> None:
        with self.lock:
            self._open = False
            cursors, self._cursors = self._cursors, []
        for cur in cursors:
            with contextlib.suppress(duckdb.Error):
                cur.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            with self.lock:
                if not self._open:
                    raise errs.StoreError(f"{self.path} is already closed")
                cur = self._root.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    @contextlib.contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self._open:
            raise errs.StoreError(f"{self.path} is already closed")
        try:
            yield self._cursor()
        except duckdb.Error as exc:
            mapped = self._mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc


@contextlib.contextmanager
def registered(con: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> Iterator[None]:
    """DataFrames visible as views for the statements inside, always unregistered."""
    for name, df in frames.items():
        con.register(name, df)
    try:
        yield
    finally:
        for name in frames:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
