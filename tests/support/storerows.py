"""Rows and a run for the store tests (unit and heavy): one benchmark suite, run "r1"."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from dtf_core import model
from dtf_core.store import Store
from support.factories import task_spec

spec = partial(task_spec, kind="benchmark", root="/suite", timeout=10.0, retries=1)


def attempt(task_id: str, n: int = 1, outcome: str = "passed", **kw: object) -> model.AttemptResult:
    return model.AttemptResult(run_id="r1", task_id=task_id, attempt=n, outcome=outcome, **kw)  # type: ignore[arg-type]


def open_run(tmp_path: Path) -> Iterator[Store]:
    """A store under ``tmp_path`` with run r1 created (the body of the ``store`` fixtures)."""
    s = Store(tmp_path / "sub" / "dtf.duckdb")
    s.create_run("r1", "demo", "/suite/suite.toml", {"git": "abc"}, 1000.0)
    yield s
    s.close()


def count(s: Store, table: str) -> int:
    row = s._one(f"SELECT count(*) FROM {table}")
    assert row is not None
    return int(row[0])
