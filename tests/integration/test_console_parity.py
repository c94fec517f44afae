"""The console attached to a real `dtf-core serve` shows what it shows locally.

Real processes on 127.0.0.1: serve with its own scheduler (--start-scheduler)
and one `dtf-core worker`; the database holds a benchmark history (seeded) and
then a run submitted through the API (one passing task, one failing, one benchmark). During the run an attached source is woken by the service's change
feed; after it, the HTTP source's snapshot, attempts and benchmark series are
compared with the local DuckDB source's on the same file (read once serve has
let it go), and a headless console attached to serve visits each of the five
screens and the task drill-down without a pane saying something is missing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from support import tui_seed
from support.keys import make_keys
from support.procs import free_port, wait_for
from support.procs import stop as kill
from support.tui_seed import async_test, screen_text, wait_until

from dtf_core.service import bundle
from dtf_core.service.client import CoordinatorClient
from dtf_core.store import Store
from dtf_tui.app import DtfApp
from dtf_tui.screens.task_detail import TaskDetailScreen
from dtf_tui.snapshot import ClusterSnapshot
from dtf_tui.sources.db import DbSource
from dtf_tui.sources.http import HttpSource
from dtf_tui.widgets.vtable import VirtualTable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
PY = sys.executable
SUITE = """
[suite]
name = "parity"
[defaults]
timeout = "60s"
retries = 1
[[task]]
name = "ok"
kind = "command"
command = ["python", "-c", "print('fine')"]
[[task]]
name = "bad"
kind = "command"
command = ["python", "-c", "import sys; sys.stderr.write('boom-parity'); sys.exit(3)"]
[[task]]
name = "bench"
kind = "benchmark"
function = "benchmod:work"
repeat = 3
warmup = 0
"""
# What a screen shows when its data is missing or a source failed.
MISSING = ("does not offer", "unavailable", "no benchmark history", "⚠", "loading")


@dataclass
class Served:
    tmp: Path
    db: Path
    url: str
    token: str
    run_id: str = ""
    woken: int = 0  # wake-ups the change feed sent during the run
    procs: list[subprocess.Popen] = field(default_factory=list)

    def source(self) -> HttpSource:
        return HttpSource(self.url, self.token, timeout=20)


def _start(tmp: Path, argv: list[str], log: str) -> subprocess.Popen:
    with open(tmp / log, "wb") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("parity")
    db = tmp / "dtf.duckdb"
    with Store(db) as store:
        tui_seed._bench_runs(store)  # a benchmark history for the Trends screen
    keys = make_keys(tmp)  # one key per job (docs/security.md)
    secret_file = keys.api
    keys.worker_token_file(tmp / "worker.jwt", "w")
    token = keys.token("submitter", "ci")
    sport, aport = free_port(), free_port()
    d = Served(tmp, db, f"http://127.0.0.1:{aport}", token)
    dtf = [PY, "-m", "dtf_core.cli"]
    try:
        d.procs.append(_start(tmp, [*dtf, "serve", "--start-scheduler", "--scheduler-port",
                                    str(sport), "--db", str(db), "--port", str(aport),
                                    "--secret-file", str(secret_file),
                                    "--worker-key-file", str(keys.worker)], "serve.log"))  # fmt: skip
        d.procs.append(_start(tmp, [*dtf, "worker", f"tcp://127.0.0.1:{sport}", "--name",
                                    "parity-w", "--nthreads", "1", "--no-nanny", "--token-file",
                                    str(tmp / "worker.jwt")], "worker.log"))  # fmt: skip
        client = CoordinatorClient(d.url, token, timeout=20)
        wait_for(lambda: len(client.workers()) == 1, 120, "serve to see the worker")
        root = tmp / "suite"
        root.mkdir()
        (root / "benchmod.py").write_text("def work():\n    return sum(range(1000))\n")
        (root / "suite.toml").write_text(textwrap.dedent(SUITE))
        follower = d.source()  # attached before the run: it must be woken by it
        follower.subscribe(lambda: None)
        follower.start()
        wait_for(lambda: follower.changes_seen >= 1, 30, "the change feed's first answer")
        before = follower.changes_seen
        run = client.submit("suite.toml", bundle.pack(root, 10**7), {})
        d.run_id = run["run_id"]
        for _ in client.follow(d.run_id):
            pass
        wait_for(lambda: follower.changes_seen > before, 30, "a wake-up from the run's changes")
        d.woken = follower.changes_seen - before
        follower.close()
        yield d
    finally:
        for p in reversed(d.procs):
            kill(p)


@async_test
async def test_each_screen_attached_to_serve_shows_its_data(served: Served) -> None:
    d = served
    app = DtfApp(d.source(), log_path=d.tmp / "tui-faults.log")
    marks = {"1": "parity", "2": "parity-w", "3": "bad", "4": "test-failure", "5": "bench @"}
    async with app.run_test(size=(160, 50)) as pilot:
        for key, mark in marks.items():
            await pilot.press(key)
            try:
                await wait_until(pilot, lambda m=mark: m in screen_text(app), timeout=30)
            except AssertionError:
                raise AssertionError(
                    f"screen {key} never showed {mark!r}:\n{screen_text(app)}"
                ) from None
            await pilot.pause(0.3)
            text = screen_text(app)
            assert not [m for m in MISSING if m in text], (key, text)
        await pilot.press("3")
        table = app.screen.query_one("#tasks", VirtualTable)
        await wait_until(pilot, lambda: any(t.task_id == "bad" for t in table.items))
        table.cursor = next(i for i, t in enumerate(table.items) if t.task_id == "bad")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TaskDetailScreen))
        detail = app.screen
        assert isinstance(detail, TaskDetailScreen)
        await wait_until(pilot, lambda: bool(detail.attempts), timeout=30)
        await wait_until(pilot, lambda: "boom-parity" in screen_text(app), timeout=10)
        assert not [m for m in MISSING if m in screen_text(app)]


def _comparable(snap: ClusterSnapshot) -> ClusterSnapshot:
    """What both sources must agree on: all but the clock, the label, the
    workers' live state (the file records who worked; serve adds CPU and status),
    and what only a service has: who leads, and its scheduler's dashboard."""
    workers = tuple(
        replace(w, status="", nthreads=0, cpu=(), memory=(), memory_limit=0, running=0)
        for w in sorted(snap.workers, key=lambda w: w.address)
    )
    return replace(snap, source="", taken_at=0.0, workers=workers, coordinator=None, dashboard="")


def test_attached_console_shows_what_the_local_one_shows(served: Served) -> None:
    d = served
    assert d.woken >= 1
    remote = d.source()
    snap = remote.poll()
    # Attached, the header names the coordinator: the one thing a file cannot say.
    assert snap.coordinator is not None and snap.coordinator.leader, snap.coordinator
    assert snap.focused_run is not None and snap.focused_run.run_id == d.run_id
    assert snap.workers and snap.workers[0].cpu, "live CPU history from the service"
    bad = next(t for t in snap.tasks if t.task_id == "bad")
    attempts = remote.attempts(d.run_id, bad.task_id)
    assert attempts and "boom-parity" in attempts[-1].stderr_tail
    keys = remote.series_keys()
    series = {k: remote.series(k) for k in keys}
    assert any(k.benchmark == "sort[n=1000]" for k in keys) and any(
        k.benchmark == "bench" for k in keys
    )
    # serve lets the file go; the local source reads the same database (this
    # test comes last in the module: it stops the service).
    for p in d.procs:
        kill(p)
    local = DbSource(str(d.db))
    assert _comparable(local.poll()) == _comparable(snap)
    assert local.attempts(d.run_id, bad.task_id) == attempts
    assert local.series_keys() == keys
    assert {k: local.series(k) for k in keys} == series
