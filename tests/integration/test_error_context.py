"""A failed attempt's system snapshot, end to end: a real `dtf-core run` (embedded
cluster, real worker processes, real pytest and a real command) stores it in a real
DuckDB file; `dtf-core report`, the service's API (real HTTP) and the console
(Pilot on the file) show it, secrets redacted. The one fake is the GPU: an
`nvidia-smi` script on the workers' PATH, run as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import free_port
from support.tui_seed import async_test, screen_text, wait_until
from textual.widgets import Static

from dtf_core.cluster import security
from dtf_core.service.api import make_app
from dtf_core.service.client import CoordinatorClient
from dtf_core.service.limits import UploadLimits
from dtf_core.service.runmanager import RunManager
from dtf_core.store import Store, StoreReader
from dtf_tui.app import DtfApp
from dtf_tui.screens.errors import ErrorsScreen
from dtf_tui.screens.task_detail import TaskDetailScreen
from dtf_tui.sources.db import DbSource
from dtf_tui.widgets.vtable import VirtualTable

SECRET_VALUE = "hunter2-do-not-store"

SUITE = """
[suite]
name = "context"
[defaults]
retries = 0
timeout = "60s"
env = {{ DEPLOY_TOKEN = "{secret}", DB_PASSWORD = "{secret}", DEMO_MODE = "on" }}
[[task]]
name = "tests"
kind = "pytest"
path = "tests"
[[task]]
name = "cmd"
kind = "command"
command = ["python", "-c", "import sys; sys.exit(3)"]
[[task]]
name = "fine"
kind = "command"
command = ["python", "-c", "pass"]
"""

TESTS = """
import duckdb

def test_ok():
    pass

def test_bad():
    assert duckdb.__version__ == "0"
"""

# Answers dtf's hardware query (name, memory) and the snapshot's (state).
SMI = """#!/bin/sh
case "$*" in
  *utilization.gpu*) echo "0, NVIDIA H100 80GB HBM3, 97, 81000, 81559, 88" ;;
  *) echo "NVIDIA H100 80GB HBM3, 81559" ;;
esac
"""


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("context")
    (tmp / "tests").mkdir()
    (tmp / "tests" / "test_x.py").write_text(textwrap.dedent(TESTS))
    (tmp / "suite.toml").write_text(SUITE.format(secret=SECRET_VALUE))
    bindir = tmp / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text(SMI)
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    paths = {"db": tmp / "dtf.duckdb", "md": tmp / "run.md", "dir": tmp}
    proc = subprocess.run(
        [sys.executable, "-m", "dtf_core.cli", "run", str(tmp / "suite.toml"), "--db",
         str(paths["db"]), "-w", "1", "-q", "--markdown", str(paths["md"])],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # tests failed
    return paths


def _attempts(db: Path) -> dict[str, dict]:
    with StoreReader(db) as r:
        run_id = r.latest_run_id()
        assert run_id is not None
        return {str(a["task_id"]): dict(a) for a in r.attempts(run_id)}


def test_failed_attempts_store_their_workers_state(ran: dict[str, Path]) -> None:
    attempts = _attempts(ran["db"])
    assert attempts["fine"]["context"] is None  # a passed attempt carries none
    for task in ("tests", "cmd"):
        ctx = attempts[task]["context"]
        assert ctx["host"] and ctx["os"] and ctx["python"].startswith("CPython")
        assert ctx["memory"]["total"] > 0 and ctx["disk"]["free"] > 0 and len(ctx["load"]) == 3
        assert ctx["gpu"][0]["temperature_c"] == 88.0 and ctx["gpu"][0]["utilization_pct"] == 97
        assert ctx["env"]["DEPLOY_TOKEN"] == "***" and ctx["env"]["DB_PASSWORD"] == "***"
        assert ctx["env"]["DEMO_MODE"] == "on" and ctx["env"]["DTF_TASK_ID"] == task
        assert "PATH" not in ctx["env"]  # the worker's own environment is not repeated
        assert any("distributed.worker" in line for line in ctx["log"])
    tests_ctx = attempts["tests"]["context"]
    # What the pytest process imported, with versions; the worker's own Dask is not in it.
    import duckdb

    assert tests_ctx["packages"]["duckdb"] == duckdb.__version__
    assert "pytest" in tests_ctx["packages"] and "distributed" not in tests_ctx["packages"]
    assert tests_ctx["packages_from"] == "pytest process"
    assert "python" in attempts["cmd"]["context"]["command"]  # resolved on the worker's PATH
    with StoreReader(ran["db"]) as r:
        everything = json.dumps([dict(a) for a in r.attempts(str(r.latest_run_id()))], default=str)
    assert SECRET_VALUE not in everything


def test_reports_show_the_snapshot(ran: dict[str, Path]) -> None:
    written = ran["md"].read_text()
    outs = {"written": written}
    for fmt in ("md", "html"):
        proc = subprocess.run(
            [sys.executable, "-m", "dtf_core.cli", "report", "--db", str(ran["db"]),
             "--format", fmt],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outs[fmt] = proc.stdout
    for name, text in outs.items():
        for needed in ("System context", "DEPLOY_TOKEN=***", "DEMO_MODE=on", "97 % busy",
                       "88 °C", "duckdb==", "free of", "available of", "worker log"):  # fmt: skip
            assert needed in text, (name, needed)
        assert SECRET_VALUE not in text, name
    assert "<details class='context'>" in outs["html"]


@pytest.fixture
def api(ran: dict[str, Path], tmp_path: Path) -> Iterator[CoordinatorClient]:
    """The service's HTTP API over the run's database, on a real port."""
    secret = b"k" * 32
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    with Store(ran["db"]) as store:
        manager = RunManager(
            None, store, workdir=tmp_path, limits=UploadLimits.from_config(),  # type: ignore[arg-type]
            max_concurrent=1, keep_finished=10,
        )  # fmt: skip

        def serve() -> None:
            asyncio.set_event_loop(loop)
            make_app(manager, secret).listen(port, address="127.0.0.1")
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert ready.wait(10)
        token = security.issue_token(secret, role="viewer", subject="v", ttl_s=600)
        try:
            yield CoordinatorClient(f"http://127.0.0.1:{port}", token, timeout=20)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def test_the_api_serves_the_snapshot(api: CoordinatorClient) -> None:
    run_id = str(api.runs()[0]["run_id"])
    [cmd] = api.attempts(run_id, "cmd")
    assert cmd["context"]["env"]["DEPLOY_TOKEN"] == "***"
    assert cmd["context"]["gpu"][0]["name"] == "NVIDIA H100 80GB HBM3"
    assert {a["task_id"] for a in api.attempts(run_id)} == {"tests", "cmd", "fine"}
    plain = api.errors(run_id)
    assert plain and all("context" not in e for e in plain)  # the console's poll stays light
    rich = {e["task_id"]: e for e in api.errors(run_id, context=True)}
    assert rich["tests"]["context"]["packages"]["pytest"]
    assert SECRET_VALUE not in json.dumps(rich)


@async_test
async def test_the_console_shows_the_snapshot(ran: dict[str, Path]) -> None:
    app = DtfApp(DbSource(str(ran["db"])))
    async with app.run_test(size=(160, 60)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("4")
        assert isinstance(app.screen, ErrorsScreen)
        box = app.screen.query_one("#error-context", Static)
        await wait_until(pilot, lambda: "host:" in str(box.content))
        text = screen_text(app)
        assert "system context" in text and "DEPLOY_TOKEN=***" in text
        assert SECRET_VALUE not in text

        await pilot.press("3")
        table = app.screen.query_one("#tasks", VirtualTable)
        table.cursor = [t.task_id for t in table.items].index("cmd")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen)
        await wait_until(pilot, lambda: bool(detail.attempts))
        text = str(detail.query_one("#output", Static).content)
        for needed in ("system context of dtf-0", "DB_PASSWORD=***", "DEMO_MODE=on",
                       "H100 80GB HBM3: 97 % busy", "command:"):  # fmt: skip
            assert needed in text, needed
        assert SECRET_VALUE not in text
