"""Fixtures shared by tests/unit and tests/integration; the code behind them is in tests/support."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.factories import suite_of, task_spec
from support.procs import stop

from dtf_core.model import Suite, TaskSpec


@pytest.fixture
def make_spec() -> Callable[..., TaskSpec]:
    """``make_spec(task_id="t", kind="command", name=None, *, root, timeout, retries, **fields)``."""
    return task_spec


@pytest.fixture
def make_suite() -> Callable[..., Suite]:
    """``make_suite(tasks, name="suite", path=None)``."""
    return suite_of


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where this test's DuckDB file goes (not created: Store creates it)."""
    return tmp_path / "dtf.duckdb"


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[Any]]]:
    """``spawn(argv, **popen_kwargs)`` starts a process that is stopped when the test ends
    (SIGTERM, then SIGKILL), whether the test passed or not."""
    started: list[subprocess.Popen[Any]] = []

    def start(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        p = subprocess.Popen(argv, **kwargs)
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        stop(p)
        for stream in (p.stdin, p.stdout, p.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(autouse=True)
def _console_log_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: Any) -> None:
    """The console's fault log goes to a temporary file, never to the user's ~/.cache."""
    monkeypatch.setenv("DTF_TUI_LOG", str(tmp_path_factory.getbasetemp() / "dtf-tui.log"))


@pytest.fixture(autouse=True)
def _scheduler_unpickler_restored() -> Iterator[None]:
    """A test that starts a scheduler in this process with dtf's preload (an in-process
    SLURMCluster, say) installs the graph-only unpickler process-wide; put Dask's back so
    the LocalClusters of later tests can still send their own plugins."""
    import distributed.protocol.pickle as dpickle
    import distributed.scheduler as dscheduler

    before = [(m, m.loads) for m in (dpickle, dscheduler)]
    yield
    for module, loads in before:
        module.loads = loads
